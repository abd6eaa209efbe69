"""Makes @streamer_version//:version.bzl with VERSION = contents of //:VERSION.

VERSION (repository root) is the one version of every distribution; this keeps
Bazel builds stamped with it instead of a copy.
"""

def _streamer_version_impl(rctx):
    path = rctx.path(Label("@//:VERSION"))
    version = rctx.read(path).strip()
    if not version:
        fail("%s is empty" % path)
    rctx.file("BUILD.bazel", "")
    rctx.file("version.bzl", "VERSION = %r\n" % version)

streamer_version_repository = repository_rule(
    implementation = _streamer_version_impl,
    local = True,
)
