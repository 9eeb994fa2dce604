# Runs predict --json on the three images write_predict_case wrote and has
# write_predict_case --check parse the output back.
#   cmake -DPREDICT=... -DCHECKER=... -DDIR=... -P check_predict.cmake
file(GLOB images ${DIR}/images/*.png)
list(SORT images)
execute_process(COMMAND ${PREDICT} --weights ${DIR}/fashion.safetensors --json --top-k 3 ${images}
  RESULT_VARIABLE status OUTPUT_FILE ${DIR}/predict.json ERROR_VARIABLE err)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "predict failed (${status}): ${err}")
endif()
execute_process(COMMAND ${CHECKER} --check ${DIR} ${DIR}/predict.json RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  file(READ ${DIR}/predict.json out)
  message(FATAL_ERROR "the predictions are wrong:\n${out}")
endif()
