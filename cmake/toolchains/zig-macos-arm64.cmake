# Cross-compile for macos-arm64 with zig: see zig.cmake.
set(ZIG_TARGET "aarch64-macos.11.0")
include("${CMAKE_CURRENT_LIST_DIR}/zig.cmake")
