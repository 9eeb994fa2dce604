# Reports an ONNX runtime test that cannot run: skipped (ctest's
# RESCNN-SKIPPED marker), or failed when RESCNN_REQUIRE_ONNX_RUNTIMES=1.
#   cmake -DREASON=... -P skip_or_fail.cmake
if("$ENV{RESCNN_REQUIRE_ONNX_RUNTIMES}" STREQUAL "1")
  message(FATAL_ERROR "RESCNN_REQUIRE_ONNX_RUNTIMES=1, but ${REASON}")
endif()
message("RESCNN-SKIPPED: ${REASON}")
