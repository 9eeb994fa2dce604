# Runs COMMAND (a ;-list) and checks its exit status and combined output.
#   cmake -DCOMMAND=... -DEXPECT=fail|pass -DREGEX=... [-DFORBID=...] -P run_expect.cmake
# EXPECT=fail: the status must be non-zero; EXPECT=pass: zero. The output
# (stdout and stderr) must match REGEX, and must not match FORBID if given.
# Used for the example programs' flag errors and end-to-end runs: a flag
# error must fail *and* say what was wrong.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
message("${all}")
if(EXPECT STREQUAL "fail" AND status EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit status, got 0")
elseif(EXPECT STREQUAL "pass" AND NOT status EQUAL 0)
  message(FATAL_ERROR "expected exit status 0, got ${status}")
endif()
if(NOT all MATCHES "${REGEX}")
  message(FATAL_ERROR "the output does not match '${REGEX}'")
endif()
if(DEFINED FORBID AND all MATCHES "${FORBID}")
  message(FATAL_ERROR "the output matches the forbidden '${FORBID}'")
endif()
