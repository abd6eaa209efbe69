# Cross-compile for linux-aarch64 with zig: see zig.cmake.
set(ZIG_TARGET "aarch64-linux-gnu.2.17")
include("${CMAKE_CURRENT_LIST_DIR}/zig.cmake")
