#pragma once
// Skipping a test that cannot run here (no GPU, model files not fetched, offline): Catch2 v2 has no
// skip, so the test prints a marker line and returns; every test program registers with ctest's
// SKIP_REGULAR_EXPRESSION on that marker (tests/CMakeLists.txt), so ctest reports it as skipped,
// never as passed.
//
//   if (!models_present()) P4LM_SKIP("SmolLM2 not fetched: run scripts/fetch-models.sh");

#include <iostream>

#define P4LM_SKIP_MARKER "P4LM_TEST_SKIPPED"

// Prints the marker with the reason and leaves the test case.
#define P4LM_SKIP(reason)                                                         \
  do {                                                                            \
    std::cout << P4LM_SKIP_MARKER ": " << reason << std::endl;                    \
    WARN("skipped: " << reason);                                                  \
    return;                                                                       \
  } while (false)
