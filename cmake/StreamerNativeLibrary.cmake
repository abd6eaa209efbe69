# The one place that knows how a native library of runai-model-streamer gets
# into a Python package.
#
#   streamer_obtain_native_library(<name> <out_var>)
#       Sets <out_var> to the absolute path of lib<name>.so (lib<name>.dylib
#       on macOS), obtained in one of three ways:
#         prebuilt  NATIVE_LIBS_PATH (CMake variable, else environment) names
#                   a directory holding <os>-<arch>/lib<name>.so, or the
#                   library directly. The file's ELF/Mach-O header is checked
#                   against the target at configure time.
#         bazel     ExternalProject runs Bazel on cpp/ (//cpp:lib<name>.so).
#         cmake     ExternalProject configures, builds and installs cpp/ with
#                   the CMake and Ninja running this build.
#       STREAMER_NATIVE_BUILD=auto|bazel|cmake (CMake variable, else
#       environment; default auto = bazel when `bazel` or `bazelisk` is on
#       PATH, else cmake) picks between the two builds when NATIVE_LIBS_PATH
#       is not set. The mode taken is printed in the build log.
#       STREAMER_STATIC_TLS_PREFIX (variable, else environment) makes both
#       builds link the plugins' libcurl and OpenSSL statically from that
#       prefix (scripts/build-tls-deps) instead of the system's libcurl.
#
#   streamer_install_native_library(<path> DESTINATION <dir>)
#       Installs the library into <dir> (relative to the install prefix, i.e.
#       the wheel's platlib) and strips it in Release/MinSizeRel builds.
#
#   streamer_package_native_library(<name> <package>)
#       Both for a package: lib<name> obtained and installed into the Python
#       package <package>. The whole job of each package's CMakeLists.txt.
#
# Target platform: CMAKE_SYSTEM_NAME / CMAKE_SYSTEM_PROCESSOR (toolchain
# files set them for cross builds); on macOS CMAKE_OSX_ARCHITECTURES, else
# ARCHFLAGS ("-arch arm64"), and CMAKE_OSX_DEPLOYMENT_TARGET, else
# MACOSX_DEPLOYMENT_TARGET. These, the build type, the compilers and the
# toolchain file are forwarded to the inner builds explicitly.

cmake_minimum_required(VERSION 3.21)
include_guard(GLOBAL)
include(ExternalProject)

# The source tree holding cpp/, VERSION and the Bazel workspace: the parent
# of this directory, in the repository and in every sdist alike.
get_filename_component(STREAMER_SOURCE_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(_STREAMER_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")

# A setting from a CMake variable, else from the environment, else "".
function(_streamer_setting name out_var)
  if(DEFINED ${name} AND NOT "${${name}}" STREQUAL "")
    set(${out_var} "${${name}}" PARENT_SCOPE)
  elseif(DEFINED ENV{${name}})
    set(${out_var} "$ENV{${name}}" PARENT_SCOPE)
  else()
    set(${out_var} "" PARENT_SCOPE)
  endif()
endfunction()

# Canonical architecture name for an OS: x86_64, aarch64 (Linux) / arm64 (macOS).
function(_streamer_normalize_arch os arch out_var)
  string(TOLOWER "${arch}" a)
  if(a MATCHES "^(x86_64|amd64|x64)$")
    set(a x86_64)
  elseif(a MATCHES "^(aarch64|arm64)$")
    if(os STREQUAL "macos")
      set(a arm64)
    else()
      set(a aarch64)
    endif()
  elseif(a MATCHES "^(i[3-6]86|x86)$")
    set(a i686)
  endif()
  set(${out_var} "${a}" PARENT_SCOPE)
endfunction()

# Target OS (linux, macos, ...), architectures (a list: macOS may build
# several at once), the artifact directory name (<os>-<arch>) and the macOS
# deployment target.
function(_streamer_target_platform os_var archs_var tag_var osx_target_var)
  if(CMAKE_SYSTEM_NAME STREQUAL "Darwin")
    set(os macos)
  elseif(CMAKE_SYSTEM_NAME)
    string(TOLOWER "${CMAKE_SYSTEM_NAME}" os)
  else()
    string(TOLOWER "${CMAKE_HOST_SYSTEM_NAME}" os)
  endif()

  set(raw_archs "")
  set(osx_target "")
  if(os STREQUAL "macos")
    if(CMAKE_OSX_ARCHITECTURES)
      set(raw_archs ${CMAKE_OSX_ARCHITECTURES})
    elseif(DEFINED ENV{ARCHFLAGS})
      string(REGEX MATCHALL "-arch +[^ ]+" flags "$ENV{ARCHFLAGS}")
      foreach(f IN LISTS flags)
        string(REGEX REPLACE "-arch +" "" f "${f}")
        list(APPEND raw_archs "${f}")
      endforeach()
    endif()
    if(CMAKE_OSX_DEPLOYMENT_TARGET)
      set(osx_target "${CMAKE_OSX_DEPLOYMENT_TARGET}")
    elseif(DEFINED ENV{MACOSX_DEPLOYMENT_TARGET})
      set(osx_target "$ENV{MACOSX_DEPLOYMENT_TARGET}")
    endif()
  endif()
  if(NOT raw_archs)
    if(CMAKE_SYSTEM_PROCESSOR)
      set(raw_archs "${CMAKE_SYSTEM_PROCESSOR}")
    else()
      set(raw_archs "${CMAKE_HOST_SYSTEM_PROCESSOR}")
    endif()
  endif()

  set(archs "")
  foreach(a IN LISTS raw_archs)
    _streamer_normalize_arch("${os}" "${a}" a)
    list(APPEND archs "${a}")
  endforeach()
  list(REMOVE_DUPLICATES archs)
  list(LENGTH archs n)
  if(n GREATER 1)
    set(tag "${os}-universal2")
  else()
    set(tag "${os}-${archs}")
  endif()
  set(${os_var} "${os}" PARENT_SCOPE)
  set(${archs_var} "${archs}" PARENT_SCOPE)
  set(${tag_var} "${tag}" PARENT_SCOPE)
  set(${osx_target_var} "${osx_target}" PARENT_SCOPE)
endfunction()

function(_streamer_library_filename name os out_var)
  if(os STREQUAL "macos")
    set(${out_var} "lib${name}.dylib" PARENT_SCOPE)
  else()
    set(${out_var} "lib${name}.so" PARENT_SCOPE)
  endif()
endfunction()

# Value of <count> bytes at byte <offset> of a hex string, little or big endian.
function(_streamer_hex_int hex offset count little_endian out_var)
  set(digits "")
  math(EXPR last "${offset} + ${count} - 1")
  foreach(i RANGE ${offset} ${last})
    math(EXPR pos "${i} * 2")
    string(SUBSTRING "${hex}" ${pos} 2 byte)
    if(little_endian)
      string(PREPEND digits "${byte}")
    else()
      string(APPEND digits "${byte}")
    endif()
  endforeach()
  math(EXPR value "0x${digits}")
  set(${out_var} "${value}" PARENT_SCOPE)
endfunction()

function(_streamer_elf_machine_name machine out_var)
  set(names "62=x86_64" "183=aarch64" "3=i686" "40=arm" "21=ppc64le" "22=s390x" "243=riscv64")
  set(result "unknown (e_machine ${machine})")
  foreach(entry IN LISTS names)
    string(REPLACE "=" ";" entry "${entry}")
    list(GET entry 0 number)
    list(GET entry 1 name)
    if(machine EQUAL number)
      set(result "${name}")
    endif()
  endforeach()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

function(_streamer_macho_cpu_name cputype out_var)
  if(cputype EQUAL 16777223) # CPU_TYPE_X86_64 0x01000007
    set(${out_var} x86_64 PARENT_SCOPE)
  elseif(cputype EQUAL 16777228) # CPU_TYPE_ARM64 0x0100000c
    set(${out_var} arm64 PARENT_SCOPE)
  else()
    set(${out_var} "unknown (cputype ${cputype})" PARENT_SCOPE)
  endif()
endfunction()

# Reads a binary's header: sets <format_var> to "ELF" or "Mach-O" (or a
# description of what the file is instead) and <archs_var> to its
# architectures (one for ELF and thin Mach-O, several for a universal file).
function(_streamer_binary_info path format_var archs_var)
  file(SIZE "${path}" size)
  if(size LESS 64)
    set(${format_var} "a ${size}-byte file, too small for a shared library" PARENT_SCOPE)
    set(${archs_var} "" PARENT_SCOPE)
    return()
  endif()
  file(READ "${path}" hex LIMIT 4096 HEX)
  string(SUBSTRING "${hex}" 0 8 magic)
  set(archs "")
  if(magic STREQUAL "7f454c46")
    set(format "ELF")
    string(SUBSTRING "${hex}" 10 2 data) # EI_DATA: 01 little, 02 big endian
    if(data STREQUAL "01")
      set(le TRUE)
    else()
      set(le FALSE)
    endif()
    _streamer_hex_int("${hex}" 16 2 ${le} e_type)
    _streamer_hex_int("${hex}" 18 2 ${le} e_machine)
    _streamer_elf_machine_name(${e_machine} arch)
    list(APPEND archs "${arch}")
    if(NOT e_type EQUAL 3) # ET_DYN
      set(format "ELF file that is not a shared library (e_type ${e_type})")
    endif()
  elseif(magic STREQUAL "cffaedfe" OR magic STREQUAL "cefaedfe")
    set(format "Mach-O")
    _streamer_hex_int("${hex}" 4 4 TRUE cputype)
    _streamer_macho_cpu_name(${cputype} arch)
    list(APPEND archs "${arch}")
    _streamer_hex_int("${hex}" 12 4 TRUE filetype)
    if(NOT filetype EQUAL 6) # MH_DYLIB
      set(format "Mach-O file that is not a dylib (filetype ${filetype})")
    endif()
  elseif(magic STREQUAL "cafebabe")
    set(format "Mach-O")
    _streamer_hex_int("${hex}" 4 4 FALSE nfat)
    if(nfat GREATER 0 AND nfat LESS 16)
      math(EXPR last "${nfat} - 1")
      foreach(i RANGE ${last})
        math(EXPR off "8 + 20 * ${i}")
        _streamer_hex_int("${hex}" ${off} 4 FALSE cputype)
        _streamer_macho_cpu_name(${cputype} arch)
        list(APPEND archs "${arch}")
      endforeach()
    endif()
  else()
    set(format "neither ELF nor Mach-O (first bytes ${magic})")
  endif()
  set(${format_var} "${format}" PARENT_SCOPE)
  set(${archs_var} "${archs}" PARENT_SCOPE)
endfunction()

# Fails the configure step unless <path> is a shared library for <os>/<archs>.
function(_streamer_check_binary path os archs tag)
  _streamer_binary_info("${path}" format found_archs)
  if(os STREQUAL "macos")
    set(expected_format "Mach-O")
  else()
    set(expected_format "ELF")
  endif()
  string(REPLACE ";" "+" found_text "${found_archs}")
  if(NOT format STREQUAL expected_format)
    if(found_text)
      set(format "${format} for ${found_text}")
    endif()
    message(FATAL_ERROR
      "NATIVE_LIBS_PATH: ${path} is ${format}, but this build targets ${tag} "
      "and needs an ${expected_format} shared library.")
  endif()
  if(format STREQUAL "ELF")
    set(described "an ELF shared library")
  else()
    set(described "a ${format} shared library")
  endif()
  foreach(a IN LISTS archs)
    if(NOT a IN_LIST found_archs)
      message(FATAL_ERROR
        "NATIVE_LIBS_PATH: ${path} is ${described} for ${found_text}, "
        "but this build targets ${tag} (needs ${a}).")
    endif()
  endforeach()
endfunction()

# Remembers how a library was obtained, for _build_info.json.
function(_streamer_record_build path mode source)
  set_property(GLOBAL PROPERTY "_STREAMER_MODE_${path}" "${mode}")
  set_property(GLOBAL PROPERTY "_STREAMER_SOURCE_${path}" "${source}")
endfunction()

# Mode 1: the library from NATIVE_LIBS_PATH.
function(_streamer_prebuilt name libs_path out_var)
  _streamer_target_platform(os archs tag osx_target)
  _streamer_library_filename(${name} ${os} filename)
  get_filename_component(dir "${libs_path}" ABSOLUTE BASE_DIR "${CMAKE_BINARY_DIR}")
  if(NOT EXISTS "${dir}")
    message(FATAL_ERROR "NATIVE_LIBS_PATH=${libs_path}: ${dir} does not exist.")
  endif()
  if(NOT IS_DIRECTORY "${dir}")
    message(FATAL_ERROR
      "NATIVE_LIBS_PATH=${libs_path}: ${dir} is a file, not a directory "
      "(expected ${tag}/${filename} or ${filename} inside it).")
  endif()
  set(candidates "${dir}/${tag}/${filename}" "${dir}/${filename}")
  set(found "")
  foreach(c IN LISTS candidates)
    if(EXISTS "${c}" AND NOT IS_DIRECTORY "${c}")
      set(found "${c}")
      break()
    endif()
  endforeach()
  if(NOT found)
    file(GLOB_RECURSE present LIST_DIRECTORIES FALSE RELATIVE "${dir}" "${dir}/*")
    list(SORT present)
    list(LENGTH present n)
    if(n EQUAL 0)
      set(present_text "the directory is empty")
    else()
      if(n GREATER 20)
        list(SUBLIST present 0 20 present)
        list(APPEND present "... (${n} files)")
      endif()
      string(REPLACE ";" ", " present_text "${present}")
      set(present_text "it contains: ${present_text}")
    endif()
    string(REPLACE ";" " and " looked "${candidates}")
    message(FATAL_ERROR
      "NATIVE_LIBS_PATH=${libs_path}: no ${filename} for ${tag}; looked at "
      "${looked}; ${present_text}.")
  endif()
  _streamer_check_binary("${found}" "${os}" "${archs}" "${tag}")
  message(STATUS "runai-model-streamer: native library ${filename}: mode prebuilt (NATIVE_LIBS_PATH): ${found}")
  # Staged as a plain file under its own name: a symlink (lib.so -> lib.so.1) would be
  # installed as a symlink.
  get_filename_component(real "${found}" REALPATH)
  set(staged "${CMAKE_BINARY_DIR}/streamer-native/prebuilt/${filename}")
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/streamer-native/prebuilt")
  file(COPY_FILE "${real}" "${staged}")
  _streamer_record_build("${staged}" prebuilt "${found}")
  set(${out_var} "${staged}" PARENT_SCOPE)
endfunction()

# Cache entries for the inner CMake build that describe the target (inner
# projects inherit none of them). CMAKE_CACHE_ARGS form keeps lists intact.
function(_streamer_forwarded_cmake_args out_var)
  set(args "")
  set(vars CMAKE_BUILD_TYPE CMAKE_TOOLCHAIN_FILE CMAKE_MAKE_PROGRAM
           CMAKE_C_COMPILER_LAUNCHER CMAKE_CXX_COMPILER_LAUNCHER)
  if(NOT CMAKE_TOOLCHAIN_FILE) # a toolchain file sets the compilers itself
    list(APPEND vars CMAKE_C_COMPILER CMAKE_CXX_COMPILER)
  endif()
  foreach(var IN LISTS vars)
    if(DEFINED ${var} AND NOT "${${var}}" STREQUAL "")
      list(APPEND args "-D${var}:STRING=${${var}}")
    endif()
  endforeach()
  _streamer_target_platform(os archs tag osx_target)
  if(os STREQUAL "macos")
    list(APPEND args "-DCMAKE_OSX_ARCHITECTURES:STRING=${archs}")
    if(osx_target)
      list(APPEND args "-DCMAKE_OSX_DEPLOYMENT_TARGET:STRING=${osx_target}")
    endif()
  endif()
  set(${out_var} "${args}" PARENT_SCOPE)
endfunction()

# Mode 3: cpp/'s own CMake build, installed into a staging prefix.
function(_streamer_cmake_build name out_var)
  _streamer_target_platform(os archs tag osx_target)
  _streamer_library_filename(${name} ${os} filename)
  set(prefix "${CMAKE_BINARY_DIR}/streamer-native")
  set(lib "${prefix}/install/lib/${filename}")
  if(NOT TARGET streamer_native_cmake)
    _streamer_forwarded_cmake_args(forwarded)
    # Plugins that need libcurl are built only by the package that ships them.
    set(build_s3 OFF)
    set(build_gcs OFF)
    set(build_azure OFF)
    set(build_hf OFF)
    if(name STREQUAL "streamers3")
      set(build_s3 ON)
    elseif(name STREQUAL "streamergcs")
      set(build_gcs ON)
    elseif(name STREQUAL "streamerazure")
      set(build_azure ON)
    elseif(name STREQUAL "streamerhf")
      set(build_hf ON)
    endif()
    _streamer_setting(STREAMER_STATIC_TLS_PREFIX tls_prefix)
    if(NOT tls_prefix STREQUAL "")
      list(APPEND forwarded "-DSTREAMER_STATIC_TLS_PREFIX:PATH=${tls_prefix}")
    endif()
    ExternalProject_Add(streamer_native_cmake
      SOURCE_DIR "${STREAMER_SOURCE_ROOT}/cpp"
      BINARY_DIR "${prefix}/build"
      INSTALL_DIR "${prefix}/install"
      PREFIX "${prefix}"
      CMAKE_GENERATOR "${CMAKE_GENERATOR}"
      CMAKE_CACHE_ARGS
        ${forwarded}
        -DCMAKE_INSTALL_PREFIX:PATH=<INSTALL_DIR>
        -DCMAKE_INSTALL_LIBDIR:STRING=lib
        -DSTREAMER_BUILD_TESTS:BOOL=OFF
        -DSTREAMER_INSTALL_TESTFS:BOOL=ON
        -DSTREAMER_BUILD_S3:BOOL=${build_s3}
        -DSTREAMER_BUILD_GCS:BOOL=${build_gcs}
        -DSTREAMER_BUILD_AZURE:BOOL=${build_azure}
        -DSTREAMER_BUILD_HF:BOOL=${build_hf}
      BUILD_ALWAYS TRUE
      BUILD_BYPRODUCTS "${lib}"
      USES_TERMINAL_BUILD TRUE
      USES_TERMINAL_INSTALL TRUE)
  endif()
  message(STATUS "runai-model-streamer: native library ${filename}: mode cmake (ExternalProject on ${STREAMER_SOURCE_ROOT}/cpp with ${CMAKE_COMMAND} and ${CMAKE_GENERATOR})")
  _streamer_record_build("${lib}" cmake "${STREAMER_SOURCE_ROOT}/cpp/CMakeLists.txt")
  set(${out_var} "${lib}" PARENT_SCOPE)
endfunction()

# Mode 2: Bazel on cpp/, outputs copied into a staging directory.
function(_streamer_bazel_build name bazel out_var)
  _streamer_target_platform(os archs tag osx_target)
  _streamer_library_filename(${name} ${os} filename)
  set(stage "${CMAKE_BINARY_DIR}/streamer-native/bazel-out")
  set(lib "${stage}/${filename}")

  set(flags "")
  if(CMAKE_BUILD_TYPE MATCHES "^(Release|MinSizeRel|RelWithDebInfo)$")
    list(APPEND flags "--compilation_mode=opt")
  elseif(CMAKE_BUILD_TYPE STREQUAL "Debug")
    list(APPEND flags "--compilation_mode=dbg")
  endif()
  if(os STREQUAL "macos")
    list(LENGTH archs n)
    if(n GREATER 1)
      message(FATAL_ERROR
        "runai-model-streamer: a Bazel build makes one architecture at a time, "
        "but this build targets ${archs}; use STREAMER_NATIVE_BUILD=cmake for a universal2 library.")
    endif()
    list(APPEND flags "--cpu=darwin_${archs}" "--macos_cpus=${archs}")
    if(osx_target)
      list(APPEND flags "--macos_minimum_os=${osx_target}")
    endif()
  endif()
  if(DEFINED ENV{CMAKE_BUILD_PARALLEL_LEVEL})
    list(APPEND flags "--jobs=$ENV{CMAKE_BUILD_PARALLEL_LEVEL}")
  endif()
  _streamer_setting(STREAMER_STATIC_TLS_PREFIX tls_prefix)
  if(NOT tls_prefix STREQUAL "")
    list(APPEND flags "--repo_env=STREAMER_STATIC_TLS_PREFIX=${tls_prefix}")
  endif()

  set(target_name "streamer_native_bazel_${name}")
  set(args_file "${CMAKE_BINARY_DIR}/streamer-native/${target_name}.cmake")
  file(CONFIGURE OUTPUT "${args_file}" CONTENT [[
set(BAZEL "@bazel@")
set(WORKSPACE "@STREAMER_SOURCE_ROOT@")
set(TARGET "//cpp:lib@name@.so")
set(FLAGS "@flags@")
set(OUTPUT "@lib@")
]] @ONLY)
  ExternalProject_Add(${target_name}
    SOURCE_DIR "${STREAMER_SOURCE_ROOT}"
    PREFIX "${CMAKE_BINARY_DIR}/streamer-native/${target_name}"
    CONFIGURE_COMMAND ""
    BUILD_COMMAND "${CMAKE_COMMAND}" -DARGS_FILE=${args_file}
                  -P "${_STREAMER_CMAKE_DIR}/StreamerBazelBuild.cmake"
    INSTALL_COMMAND ""
    BUILD_ALWAYS TRUE
    BUILD_BYPRODUCTS "${lib}"
    USES_TERMINAL_BUILD TRUE)
  string(REPLACE ";" " " flags_text "${flags}")
  message(STATUS "runai-model-streamer: native library ${filename}: mode bazel (${bazel} build ${flags_text} //cpp:lib${name}.so in ${STREAMER_SOURCE_ROOT})")
  _streamer_record_build("${lib}" bazel "//cpp:lib${name}.so")
  set(${out_var} "${lib}" PARENT_SCOPE)
endfunction()

function(streamer_obtain_native_library name out_var)
  _streamer_setting(NATIVE_LIBS_PATH libs_path)
  _streamer_setting(STREAMER_NATIVE_BUILD mode)
  if(mode STREQUAL "")
    set(mode auto)
  endif()
  if(NOT mode MATCHES "^(auto|bazel|cmake)$")
    message(FATAL_ERROR
      "STREAMER_NATIVE_BUILD=${mode} is not one of auto, bazel, cmake.")
  endif()

  if(NOT libs_path STREQUAL "")
    _streamer_prebuilt(${name} "${libs_path}" lib)
    set(${out_var} "${lib}" PARENT_SCOPE)
    return()
  endif()

  # Only PATH counts: a Bazel elsewhere is not the one the user chose.
  find_program(bazel NAMES bazel bazelisk NO_CACHE NO_DEFAULT_PATH PATHS ENV PATH)
  if(mode STREQUAL "auto")
    if(bazel)
      set(mode bazel)
    else()
      set(mode cmake)
    endif()
    message(STATUS "runai-model-streamer: STREAMER_NATIVE_BUILD=auto chose ${mode}")
  endif()
  if(mode STREQUAL "bazel")
    if(NOT bazel)
      message(FATAL_ERROR
        "STREAMER_NATIVE_BUILD=bazel, but neither `bazel` nor `bazelisk` is on "
        "PATH ($ENV{PATH}). Install Bazel, or use STREAMER_NATIVE_BUILD=cmake.")
    endif()
    _streamer_bazel_build(${name} "${bazel}" lib)
  else()
    _streamer_cmake_build(${name} lib)
  endif()
  set(${out_var} "${lib}" PARENT_SCOPE)
endfunction()

function(streamer_install_native_library path)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "DESTINATION" "")
  if(NOT arg_DESTINATION)
    message(FATAL_ERROR "streamer_install_native_library(${path}): DESTINATION is required")
  endif()
  install(FILES "${path}" DESTINATION "${arg_DESTINATION}"
          PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
                      GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

  # _build_info.json next to the library: how it was obtained (shown by
  # `runai-model-streamer info`).
  get_filename_component(filename "${path}" NAME)
  get_property(mode GLOBAL PROPERTY "_STREAMER_MODE_${path}")
  get_property(source GLOBAL PROPERTY "_STREAMER_SOURCE_${path}")
  _streamer_target_platform(os archs tag osx_target)
  set(version "${SKBUILD_PROJECT_VERSION_FULL}")
  if(NOT version AND EXISTS "${STREAMER_SOURCE_ROOT}/VERSION")
    file(STRINGS "${STREAMER_SOURCE_ROOT}/VERSION" version LIMIT_COUNT 1)
  endif()
  set(info "${CMAKE_CURRENT_BINARY_DIR}/streamer-native/${filename}.build_info.json")
  file(CONFIGURE OUTPUT "${info}" CONTENT [[{
  "library": "@filename@",
  "mode": "@mode@",
  "source": "@source@",
  "target": "@tag@",
  "build_type": "@CMAKE_BUILD_TYPE@",
  "version": "@version@"
}
]] @ONLY)
  install(FILES "${info}" DESTINATION "${arg_DESTINATION}" RENAME _build_info.json)
  if(NOT CMAKE_BUILD_TYPE MATCHES "^(Release|MinSizeRel)$")
    return()
  endif()

  # install(FILES) does not strip, even with `cmake --install --strip`.
  if(CMAKE_STRIP)
    set(strip "${CMAKE_STRIP}")
  else()
    find_program(strip NAMES strip llvm-strip NO_CACHE)
  endif()
  if(NOT strip)
    message(FATAL_ERROR "runai-model-streamer: no `strip` program to strip ${path} in a ${CMAKE_BUILD_TYPE} build")
  endif()
  if(os STREQUAL "macos")
    set(strip_flags "-x") # keep the exported symbols of a dylib
  else()
    set(strip_flags "--strip-unneeded")
  endif()
  install(CODE "
    set(_lib \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${arg_DESTINATION}/${filename}\")
    message(STATUS \"Stripping: \${_lib}\")
    execute_process(COMMAND \"${strip}\" ${strip_flags} \"\${_lib}\"
                    RESULT_VARIABLE _rc ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR \"${strip} ${strip_flags} \${_lib} failed (\${_rc}): \${_err}\")
    endif()
  ")
endfunction()

function(streamer_package_native_library name package)
  streamer_obtain_native_library(${name} library)
  streamer_install_native_library("${library}" DESTINATION ${package})
endfunction()
