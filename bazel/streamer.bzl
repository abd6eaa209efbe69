"""Shared settings of the C++ targets in cpp/BUILD.bazel (mirrors cpp/CMakeLists.txt)."""

COPTS = [
    "-Wall",
    "-Wextra",
    "-fvisibility=hidden",
    "-fvisibility-inlines-hidden",
]

def export_only_linkopts(linux_map, macos_list, library):
    """Linker options for a shared library that exports only the listed symbols.

    Args:
      linux_map: label of the GNU ld version script.
      macos_list: label of the ld64 exported-symbols list.
      library: base name; SONAME lib<library>.so, install name @rpath/lib<library>.dylib.
    Returns:
      a select() of linker options; the files must also be additional_linker_inputs.
    """
    return select({
        "@bazel_tools//src/conditions:darwin": [
            "-Wl,-exported_symbols_list,$(location %s)" % macos_list,
            "-Wl,-install_name,@rpath/lib%s.dylib" % library,
        ],
        "//conditions:default": [
            "-Wl,--version-script=$(location %s)" % linux_map,
            "-Wl,--no-undefined",
            "-Wl,-soname,lib%s.so" % library,
        ],
    })

def object_store_plugin(name, folder):
    """lib<name>.so: an object-storage backend plugin, <folder>/<folder>_backend.cc plus the
    shared HTTP layer and C ABI, exporting only that ABI (as cpp/CMakeLists.txt builds it)."""
    native.cc_binary(
        name = "lib%s.so" % name,
        srcs = ["%s/%s_backend.cc" % (folder, folder)],
        additional_linker_inputs = [
            "%s/%s.map" % (folder, folder),
            "%s/%s.exports" % (folder, folder),
        ],
        copts = COPTS,
        linkopts = export_only_linkopts(
            "%s/%s.map" % (folder, folder),
            "%s/%s.exports" % (folder, folder),
            name,
        ),
        linkshared = True,
        visibility = ["//visibility:public"],
        deps = [
            ":http",
            ":plugin_exports",
            ":streamer_headers",
        ],
    )
