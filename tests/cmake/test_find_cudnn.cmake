# cmake -DRESCNN_SOURCE_DIR=... -DWORK_DIR=... -P test_find_cudnn.cmake
#
# Runs cmake/FindCuDNN.cmake (through the find_cudnn/ project) against fake
# cuDNN installations and checks which one it takes:
#  - CUDNN_ROOT wins over an unversioned libcudnn.so elsewhere on the search
#    path, and the header and the library both come from CUDNN_ROOT;
#  - without CUDNN_ROOT, pip's wheel is found through `import nvidia.cudnn`;
#  - an incomplete CUDNN_ROOT, a cuDNN 8 header and no cuDNN at all are
#    errors that say where it looked.
cmake_minimum_required(VERSION 3.25)
foreach(v RESCNN_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "test_find_cudnn.cmake: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
unset(ENV{CUDNN_ROOT})  # the environment must not choose for the cases below

# fake_cudnn(ROOT MAJOR MINOR LIBNAME...): include/cudnn.h, cudnn_version.h
# and empty library files under ROOT.
function(fake_cudnn root major minor)
  file(WRITE "${root}/include/cudnn.h" "/* fake */\n")
  file(WRITE "${root}/include/cudnn_version.h"
    "#define CUDNN_MAJOR ${major}\n#define CUDNN_MINOR ${minor}\n#define CUDNN_PATCHLEVEL 0\n")
  foreach(lib IN LISTS ARGN)
    file(WRITE "${root}/${lib}" "")
  endforeach()
endfunction()

set(failures 0)
# expect(NAME PASS|FAIL REGEX ARGS...): configure the probe with ARGS and
# match its output.
function(expect name outcome regex)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S "${RESCNN_SOURCE_DIR}/tests/cmake/find_cudnn" -B "${WORK_DIR}/build-${name}"
            "-DRESCNN_SOURCE_DIR=${RESCNN_SOURCE_DIR}" ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(all "${out}${err}")
  string(REGEX REPLACE "[ \n]+" " " flat "${all}")  # CMake wraps long messages
  set(ok TRUE)
  if(outcome STREQUAL "PASS" AND NOT rc EQUAL 0)
    set(ok FALSE)
  elseif(outcome STREQUAL "FAIL" AND rc EQUAL 0)
    set(ok FALSE)
  endif()
  if(NOT flat MATCHES "${regex}")
    set(ok FALSE)
  endif()
  if(ok)
    message(STATUS "ok: ${name}")
  else()
    message(STATUS "FAILED: ${name}: expected ${outcome} matching '${regex}', exit ${rc}, output:\n${all}")
    math(EXPR f "${failures} + 1")
    set(failures ${f} PARENT_SCOPE)
  endif()
endfunction()

set(root "${WORK_DIR}/root")          # the installation asked for
set(other "${WORK_DIR}/other")        # another one, with an unversioned libcudnn.so
set(wheel "${WORK_DIR}/site/nvidia/cudnn")  # pip's layout
fake_cudnn("${root}" 9 1 lib/libcudnn.so.9)
fake_cudnn("${other}" 9 99 lib/libcudnn.so)
fake_cudnn("${wheel}" 9 7 lib/libcudnn.so.9)
file(WRITE "${wheel}/__init__.py" "")
fake_cudnn("${WORK_DIR}/old" 8 9 lib/libcudnn.so.8)
file(WRITE "${WORK_DIR}/headeronly/include/cudnn.h" "")

# The unversioned library of `other` is on CMAKE_PREFIX_PATH; without
# NAMES_PER_DIR find_library would take it for the name "cudnn" before
# looking for libcudnn.so.9 in CUDNN_ROOT.
expect(root_wins PASS "cuDNN 9\\.1\\.0 from ${root}: header ${root}/include/cudnn\\.h, library ${root}/lib/libcudnn\\.so\\.9"
  "-DCUDNN_ROOT=${root}" "-DCMAKE_PREFIX_PATH=${other}")

find_program(python3 python3)
if(python3)
  set(ENV{PYTHONPATH} "${WORK_DIR}/site")
  expect(python_wheel PASS "cuDNN 9\\.7\\.0 from ${wheel}: header ${wheel}/include/cudnn\\.h, library ${wheel}/lib/libcudnn\\.so\\.9"
    "-DPython3_EXECUTABLE=${python3}")
  # Without Python3_EXECUTABLE: the python3 on PATH.
  expect(python_on_path PASS "cuDNN 9\\.7\\.0 from ${wheel}: header ${wheel}/include/cudnn\\.h")
  # A root with only the header comes first (the toolkit's directory): the
  # next complete root is taken whole, its header included.
  expect(partial_root_first PASS "cuDNN 9\\.7\\.0 from ${wheel}: header ${wheel}/include/cudnn\\.h, library ${wheel}/lib/libcudnn\\.so\\.9"
    "-DCUDAToolkit_TARGET_DIR=${WORK_DIR}/headeronly")
  unset(ENV{PYTHONPATH})
else()
  message(STATUS "FAILED: python_wheel: no python3 on PATH to run `import nvidia.cudnn`")
  math(EXPR failures "${failures} + 1")
endif()

# Debian's and Ubuntu's layout: both under the multiarch directories.
file(WRITE "${WORK_DIR}/deb/include/x86_64-linux-gnu/cudnn.h" "")
file(WRITE "${WORK_DIR}/deb/include/x86_64-linux-gnu/cudnn_version.h"
  "#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 10\n#define CUDNN_PATCHLEVEL 2\n")
file(WRITE "${WORK_DIR}/deb/lib/x86_64-linux-gnu/libcudnn.so.9" "")
expect(multiarch PASS "cuDNN 9\\.10\\.2 from ${WORK_DIR}/deb: header ${WORK_DIR}/deb/include/x86_64-linux-gnu/cudnn\\.h"
  "-DCUDNN_ROOT=${WORK_DIR}/deb")

expect(root_incomplete FAIL "CUDNN_ROOT='${WORK_DIR}/headeronly' does not hold cuDNN.*cudnn\\.h in ${WORK_DIR}/headeronly/include, but not both"
  "-DCUDNN_ROOT=${WORK_DIR}/headeronly")
expect(cudnn8 FAIL "needs cuDNN 9, but ${WORK_DIR}/old/include/cudnn_version\\.h says '8\\.9\\.0'"
  "-DCUDNN_ROOT=${WORK_DIR}/old")
expect(none FAIL "cuDNN not found\\. Looked for include/cudnn\\.h and libcudnn in one root"
  "-DPython3_EXECUTABLE=/nonexistent/python3")

if(failures GREATER 0)
  message(FATAL_ERROR "test_find_cudnn: ${failures} case(s) failed")
endif()
