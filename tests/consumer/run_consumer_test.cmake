# Run with: cmake -DRESCNN_BUILD_DIR=... -DRESCNN_CONSUMER_SOURCE_DIR=...
#                 -DRESCNN_WORK_DIR=... [-DRESCNN_CONFIG=...] [-DRESCNN_GENERATOR=...]
#                 [-DRESCNN_CXX_COMPILER=...] -P run_consumer_test.cmake
#
# (a) installs the rescnn build tree into <build>/consumer-install,
# (b) configures tests/consumer in a fresh build dir with that prefix,
# (c) builds it, (d) runs the program. Any failure is fatal, with the output.

foreach(var RESCNN_BUILD_DIR RESCNN_CONSUMER_SOURCE_DIR RESCNN_WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT DEFINED RESCNN_CONFIG OR RESCNN_CONFIG STREQUAL "")
  set(RESCNN_CONFIG Release)
endif()

set(prefix ${RESCNN_BUILD_DIR}/consumer-install)
set(consumer_build ${RESCNN_WORK_DIR}/build)

function(run_step name)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmdline "${ARGN}")
    message(FATAL_ERROR "consumer_project: step '${name}' failed (${rc})\n"
                        "command: ${cmdline}\n${out}")
  endif()
  message(STATUS "consumer_project: ${name}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# (a) install
file(REMOVE_RECURSE ${prefix})
run_step(install ${CMAKE_COMMAND} --install ${RESCNN_BUILD_DIR} --prefix ${prefix} --config ${RESCNN_CONFIG})

# (b) configure a fresh consumer build against the installed package only
file(REMOVE_RECURSE ${consumer_build})
set(configure_args -S ${RESCNN_CONSUMER_SOURCE_DIR} -B ${consumer_build}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${RESCNN_CONFIG})
if(DEFINED RESCNN_GENERATOR AND NOT RESCNN_GENERATOR STREQUAL "")
  list(APPEND configure_args -G ${RESCNN_GENERATOR})
endif()
if(DEFINED RESCNN_CXX_COMPILER AND NOT RESCNN_CXX_COMPILER STREQUAL "")
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${RESCNN_CXX_COMPILER})
endif()
run_step(configure ${CMAKE_COMMAND} ${configure_args})

# (c) build
run_step(build ${CMAKE_COMMAND} --build ${consumer_build} --config ${RESCNN_CONFIG})

# (d) run
set(exe ${consumer_build}/consumer)
if(EXISTS ${consumer_build}/${RESCNN_CONFIG}/consumer${CMAKE_EXECUTABLE_SUFFIX})
  set(exe ${consumer_build}/${RESCNN_CONFIG}/consumer)  # multi-config generators
endif()
run_step(run ${exe})
message(STATUS "consumer_project: program output: ${step_output}")
