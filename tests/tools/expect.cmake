# Runs one command and checks its exit code and output: the CLI's contract (exit 0 / 1 / 2, one clear
# line on bad usage) tested from the outside.
# -DCOMMAND="p4lm;args" -DEXPECT_RC=N -DEXPECT_OUTPUT=<regex> [-DEXPECT_LINES=N]
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}; output:\n${all}")
endif()
if(NOT all MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "output does not match '${EXPECT_OUTPUT}':\n${all}")
endif()
if(DEFINED EXPECT_LINES)
  string(REGEX MATCHALL "\n" newlines "${all}")
  list(LENGTH newlines count)
  if(NOT count EQUAL EXPECT_LINES)
    message(FATAL_ERROR "${count} lines, expected ${EXPECT_LINES}:\n${all}")
  endif()
endif()
