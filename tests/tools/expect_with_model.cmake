# expect.cmake for commands that need a model of the model cache (scripts/fetch-models.sh): when
# -DREQUIRES=<file> is absent, the test prints the skip marker (ctest's SKIP_REGULAR_EXPRESSION
# reports it skipped) instead of running.
if(NOT EXISTS "${REQUIRES}")
  message(FATAL_ERROR "P4LM_TEST_SKIPPED: ${REQUIRES} not in the model cache (run scripts/fetch-models.sh)")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)
