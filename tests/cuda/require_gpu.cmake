# cmake -DPROGRAM=<a tests/cuda test executable> -P require_gpu.cmake
#
# Runs PROGRAM with RESCNN_REQUIRE_GPU=1. With a usable GPU (it prints its
# "CUDA device" line) it must pass; without one it must fail, not skip (exit
# 77), and say why in the runtime's words (a cudaError name).
set(ENV{RESCNN_REQUIRE_GPU} 1)
execute_process(COMMAND "${PROGRAM}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(all MATCHES "CUDA device [0-9]+: ")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "a GPU is present and ${PROGRAM} failed (exit ${rc}):\n${all}")
  endif()
  message(STATUS "a GPU is present and the tests passed")
elseif(rc EQUAL 77)
  message(FATAL_ERROR "RESCNN_REQUIRE_GPU=1 and no GPU, but ${PROGRAM} still reported a skip (exit 77):\n${all}")
elseif(rc EQUAL 0)
  message(FATAL_ERROR "RESCNN_REQUIRE_GPU=1 and no GPU, but ${PROGRAM} passed:\n${all}")
elseif(NOT all MATCHES "FAILED: RESCNN_REQUIRE_GPU=1 but no CUDA device can be used \\(cudaGetDeviceCount: (cuda[A-Za-z]+: |0 device)")
  message(FATAL_ERROR "no GPU, and ${PROGRAM} failed (exit ${rc}) without naming the CUDA error:\n${all}")
else()
  message(STATUS "no GPU: failed as required: ${all}")
endif()
