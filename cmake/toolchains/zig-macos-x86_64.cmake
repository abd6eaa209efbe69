# Cross-compile for macos-x86_64 with zig: see zig.cmake.
set(ZIG_TARGET "x86_64-macos.10.15")
include("${CMAKE_CURRENT_LIST_DIR}/zig.cmake")
