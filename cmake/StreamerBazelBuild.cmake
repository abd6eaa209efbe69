# Runs one Bazel build of a native library and copies the result into the
# staging path. Invoked by StreamerNativeLibrary.cmake as
#   cmake -DARGS_FILE=<file> -P StreamerBazelBuild.cmake
# where <file> sets BAZEL, WORKSPACE, TARGET (//cpp:lib<name>.so), FLAGS (a
# list) and OUTPUT (the staged library path).
cmake_minimum_required(VERSION 3.21)
include("${ARGS_FILE}")

# A short-lived server: wheel builds from temporary sdist directories would
# otherwise leave one idle Bazel server per directory behind. It is also shut
# down once the library is staged (below): the server keeps a descriptor of the
# pipe pip reads the build's output from, so pip would wait for it to go idle
# (measured: 60 s after an 11 s build of libstreamers3).
set(startup "--max_idle_secs=60")
# No bazel-* convenience symlinks in the source tree; ask Bazel where the
# output went instead.
set(common ${FLAGS} "--symlink_prefix=/")

string(REPLACE ";" " " common_text "${common}")
message(STATUS "Bazel: ${BAZEL} ${startup} build ${common_text} ${TARGET}  (in ${WORKSPACE})")
execute_process(
  COMMAND "${BAZEL}" ${startup} build ${common} "${TARGET}"
  WORKING_DIRECTORY "${WORKSPACE}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "Bazel build of ${TARGET} in ${WORKSPACE} failed (exit ${rc}); see the Bazel output above.")
endif()

execute_process(
  COMMAND "${BAZEL}" ${startup} info ${common} bazel-bin
  WORKING_DIRECTORY "${WORKSPACE}"
  OUTPUT_VARIABLE bazel_bin OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_VARIABLE info_err
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "`bazel info bazel-bin` in ${WORKSPACE} failed (exit ${rc}): ${info_err}")
endif()

string(REGEX REPLACE "^//" "" relative "${TARGET}")
string(REPLACE ":" "/" relative "${relative}")
set(built "${bazel_bin}/${relative}")
if(NOT EXISTS "${built}")
  message(FATAL_ERROR "Bazel reported success but ${built} does not exist.")
endif()
get_filename_component(out_dir "${OUTPUT}" DIRECTORY)
file(MAKE_DIRECTORY "${out_dir}")
# Bazel's outputs are read-only; the staged copy must be writable (strip).
file(COPY_FILE "${built}" "${OUTPUT}.tmp")
file(CHMOD "${OUTPUT}.tmp" FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
     GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
message(STATUS "Bazel: staged ${built} -> ${OUTPUT}")

# Let the build's caller go now (see above); its outputs stay cached in the
# output base for the next build of this workspace.
execute_process(
  COMMAND "${BAZEL}" ${startup} shutdown
  WORKING_DIRECTORY "${WORKSPACE}"
  OUTPUT_QUIET ERROR_QUIET)
