# Cross-compiling with zig (PyPI `ziglang`): C and C++ for one target, libc++ linked statically.
#
# Use one of the per-platform files beside this one (zig-linux-x86_64.cmake, ...), or set
# ZIG_TARGET (e.g. -DZIG_TARGET=aarch64-linux-gnu.2.17) and pass this file as CMAKE_TOOLCHAIN_FILE.
# Always give macOS targets a version suffix (x86_64-macos.10.15): without it zig uses its own
# newest default and the library's minimum OS becomes that.
#
# The zig executable is ZIG_EXECUTABLE, or $ZIG, or the one in the ziglang package of
# $ZIG_PYTHON (default: python3 on PATH).
cmake_minimum_required(VERSION 3.19)

if(NOT ZIG_TARGET)
  set(ZIG_TARGET "$ENV{ZIG_TARGET}")
endif()
if(NOT ZIG_TARGET)
  message(FATAL_ERROR "zig toolchain: set ZIG_TARGET (e.g. x86_64-linux-gnu.2.17, aarch64-macos.11.0)")
endif()
# Environment survives into try_compile() projects; cache variables do not.
set(ENV{ZIG_TARGET} "${ZIG_TARGET}")

if(NOT ZIG_EXECUTABLE)
  if(DEFINED ENV{ZIG} AND NOT "$ENV{ZIG}" STREQUAL "")
    set(ZIG_EXECUTABLE "$ENV{ZIG}")
  else()
    if(DEFINED ENV{ZIG_PYTHON} AND NOT "$ENV{ZIG_PYTHON}" STREQUAL "")
      set(_zig_python "$ENV{ZIG_PYTHON}")
    else()
      find_program(_zig_python NAMES python3 python REQUIRED)
    endif()
    execute_process(
      COMMAND "${_zig_python}" -c "import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), 'zig'))"
      OUTPUT_VARIABLE ZIG_EXECUTABLE OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _zig_rc)
    if(NOT _zig_rc EQUAL 0 OR NOT EXISTS "${ZIG_EXECUTABLE}")
      message(FATAL_ERROR "zig toolchain: no zig found; `pip install ziglang` or set ZIG=/path/to/zig")
    endif()
  endif()
endif()

string(REGEX MATCH "^[^-]+" _zig_arch "${ZIG_TARGET}")
if(ZIG_TARGET MATCHES "-linux-")
  set(CMAKE_SYSTEM_NAME Linux)
elseif(ZIG_TARGET MATCHES "-macos")
  set(CMAKE_SYSTEM_NAME Darwin)
  if(NOT ZIG_TARGET MATCHES "-macos\\.[0-9]")
    message(FATAL_ERROR "zig toolchain: macOS target '${ZIG_TARGET}' has no version suffix; "
                        "its minimum OS would be zig's default. Use e.g. aarch64-macos.11.0")
  endif()
  # CMake's Darwin platform files would add -arch/-isysroot/-mmacosx-version-min and call xcrun:
  # zig takes all of that from -target instead.
  set(CMAKE_OSX_ARCHITECTURES "" CACHE STRING "" FORCE)
  set(CMAKE_OSX_DEPLOYMENT_TARGET "" CACHE STRING "" FORCE)
  set(CMAKE_OSX_SYSROOT "/" CACHE PATH "" FORCE)
else()
  message(FATAL_ERROR "zig toolchain: unsupported ZIG_TARGET '${ZIG_TARGET}'")
endif()
if(_zig_arch STREQUAL "aarch64")
  set(CMAKE_SYSTEM_PROCESSOR "${_zig_arch}")
  if(CMAKE_SYSTEM_NAME STREQUAL "Darwin")
    set(CMAKE_SYSTEM_PROCESSOR arm64)
  endif()
else()
  set(CMAKE_SYSTEM_PROCESSOR "${_zig_arch}")
endif()

set(CMAKE_C_COMPILER "${ZIG_EXECUTABLE}" cc -target "${ZIG_TARGET}")
set(CMAKE_CXX_COMPILER "${ZIG_EXECUTABLE}" c++ -target "${ZIG_TARGET}")
# CMAKE_AR and CMAKE_RANLIB must each be one program: write small wrappers around `zig ar`.
set(_zig_wrappers "${CMAKE_BINARY_DIR}/zig-wrappers")
foreach(_tool ar ranlib)
  if(NOT EXISTS "${_zig_wrappers}/zig-${_tool}")
    file(WRITE "${_zig_wrappers}/tmp/zig-${_tool}" "#!/bin/sh\nexec \"${ZIG_EXECUTABLE}\" ${_tool} \"$@\"\n")
    file(COPY "${_zig_wrappers}/tmp/zig-${_tool}" DESTINATION "${_zig_wrappers}"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endif()
endforeach()
set(CMAKE_AR "${_zig_wrappers}/zig-ar" CACHE FILEPATH "" FORCE)
set(CMAKE_RANLIB "${_zig_wrappers}/zig-ranlib" CACHE FILEPATH "" FORCE)

# zig has no strip for every format; llvm-strip (Debian `llvm`) handles ELF and Mach-O alike.
find_program(ZIG_TOOLCHAIN_STRIP NAMES llvm-strip llvm-strip-19 llvm-strip-18 llvm-strip-17
             llvm-strip-16 llvm-strip-15 llvm-strip-14)
if(ZIG_TOOLCHAIN_STRIP)
  set(CMAKE_STRIP "${ZIG_TOOLCHAIN_STRIP}" CACHE FILEPATH "" FORCE)
elseif(NOT CMAKE_SYSTEM_NAME STREQUAL CMAKE_HOST_SYSTEM_NAME OR NOT _zig_arch STREQUAL CMAKE_HOST_SYSTEM_PROCESSOR)
  message(WARNING "zig toolchain: no llvm-strip found; the host's strip cannot strip ${ZIG_TARGET} binaries "
                  "(apt-get install llvm)")
endif()

# Nothing from the build host: headers and libraries come from zig's bundled libc/libc++.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
