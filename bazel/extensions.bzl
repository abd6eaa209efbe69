"""bzlmod (Bazel 7+) wrapper of bazel/version.bzl; Bazel 4 never loads this."""

load(":version.bzl", "streamer_version_repository")

def _streamer_version_ext_impl(_mctx):
    streamer_version_repository(name = "streamer_version")

streamer_version = module_extension(implementation = _streamer_version_ext_impl)
