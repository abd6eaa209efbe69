"""bzlmod (Bazel 7+) wrapper of bazel/version.bzl; Bazel 4 never loads this."""

load(":curl.bzl", "streamer_curl_repository")
load(":version.bzl", "streamer_version_repository")

def _streamer_version_ext_impl(_mctx):
    streamer_version_repository(name = "streamer_version")

streamer_version = module_extension(implementation = _streamer_version_ext_impl)

def _streamer_curl_ext_impl(_mctx):
    streamer_curl_repository(name = "streamer_curl")

streamer_curl = module_extension(implementation = _streamer_curl_ext_impl)
