# cmake -DCOMMAND=<list> -DEXPECTED=<regex> -P expect_failure.cmake: runs
# COMMAND and passes when it exits non-zero with output matching EXPECTED.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(result EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit, got 0")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECTED}")
  message(FATAL_ERROR "the output does not match '${EXPECTED}'")
endif()
message("exit ${result}, as expected")
