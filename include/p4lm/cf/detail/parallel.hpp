#pragma once
// Internal to p4lm::cf: how many OpenMP threads a CF loop runs on, and the check that a solver's
// factors are still finite.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <thread>

#include <xtensor/xtensor.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/finite.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace p4lm::cf::detail {

// Most threads a CF loop asks for, whatever the caller set (OMP_NUM_THREADS, omp_set_num_threads):
// a team of 100000 made libgomp crash (SIGSEGV) instead of failing, and these loops gain nothing past
// the machine's hardware threads.
inline int team_size() {
#ifdef _OPENMP
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::clamp(omp_get_max_threads(), 1, hardware);
#else
  return 1;
#endif
}

// InvalidArgument naming the solver, the epoch and the matrix if any value of `m` is NaN or infinite:
// a diverging run stops instead of writing NaN embeddings.
template <class E>
void require_finite_factors(const E& m, const char* solver, int epoch, const char* matrix) {
  const std::span<const float> values(m.data(), m.size());
  const std::size_t i = io::first_non_finite(values);
  if (i == values.size()) return;
  const std::size_t cols = m.dimension() == 2 ? m.shape()[1] : 1;
  fail<InvalidArgument>(solver, ": epoch ", epoch, ": ", matrix, " became non-finite (row ", i / cols,
                        " holds ", values[i], "); lower alpha / init_std or raise reg");
}

}  // namespace p4lm::cf::detail
