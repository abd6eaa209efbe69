"""Makes @streamer_curl//:curl, the libcurl that the object-storage plugins link (:http).

With STREAMER_STATIC_TLS_PREFIX set (environment or --repo_env), libcurl, libssl and libcrypto
are linked statically from that prefix, made by scripts/build-tls-deps (release builds);
otherwise the system's libcurl (-lcurl, source builds), as cpp/CMakeLists.txt does.
"""

def _streamer_curl_impl(rctx):
    prefix = rctx.os.environ.get("STREAMER_STATIC_TLS_PREFIX", "")
    if not prefix:
        rctx.file("BUILD.bazel", """cc_library(
    name = "curl",
    linkopts = ["-lcurl"],
    visibility = ["//visibility:public"],
)
""")
        return
    for lib in ["curl", "ssl", "crypto"]:
        if not rctx.path("%s/lib/lib%s.a" % (prefix, lib)).exists:
            fail("STREAMER_STATIC_TLS_PREFIX=%s has no lib/lib%s.a; make it with " % (prefix, lib) +
                 "scripts/build-tls-deps --prefix %s" % prefix)
    rctx.symlink(prefix + "/include", "include")
    rctx.symlink(prefix + "/lib", "lib")

    # curl links Apple frameworks (proxy settings) where its configure found them.
    pc = rctx.read(prefix + "/lib/pkgconfig/libcurl.pc")
    frameworks = []
    for line in pc.splitlines():
        if line.startswith("Libs.private:"):
            words = [w for w in line.replace("\t", " ").split(" ") if w]
            for i in range(len(words) - 1):
                if words[i] == "-framework":
                    frameworks.append(words[i + 1])
    rctx.file("BUILD.bazel", """cc_library(
    name = "curl",
    srcs = ["lib/libcurl.a", "lib/libssl.a", "lib/libcrypto.a"],  # in link order
    hdrs = glob(["include/curl/*.h"]),
    includes = ["include"],
    defines = ["CURL_STATICLIB"],
    linkopts = ["-pthread"] + select({
        "@bazel_tools//src/conditions:darwin": %r,
        "//conditions:default": ["-ldl"],
    }),
    visibility = ["//visibility:public"],
)
""" % [flag for name in frameworks for flag in ["-framework", name]])

streamer_curl_repository = repository_rule(
    implementation = _streamer_curl_impl,
    environ = ["STREAMER_STATIC_TLS_PREFIX"],
    local = True,
)
