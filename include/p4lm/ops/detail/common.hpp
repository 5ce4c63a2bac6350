#pragma once
// Internals shared by the CPU ops (do not include directly): view aliases, id validation, and the
// two loop shapes every element-wise op uses (OpenMP over chunks, xsimd inside). Shape checks:
// ops/shape_checks.hpp.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include <omp.h>
#include <xsimd/xsimd.hpp>

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/shape_check.hpp"
#include "p4lm/core/tensor.hpp"

namespace p4lm::ops {

template <Scalar T>
using CpuView = TensorView<backend::cpu, T>;
using CpuIds = TensorView<backend::cpu, std::int32_t>;

// Targets equal to this are skipped by the losses that take an ignore_index (PyTorch's default).
inline constexpr std::int32_t ignore_index_default = -100;

namespace detail {

// Shape checks live in ops/shape_checks.hpp (shared with every backend), not here.

// Every id must lie in [0, limit) or equal `ignore` (when ignorable). Checked before any parallel
// loop, because an exception cannot leave an OpenMP region.
inline void check_ids(const char* what, const TensorView<backend::cpu, std::int32_t>& ids, std::size_t limit,
                      bool ignorable = false, std::int32_t ignore = ignore_index_default) {
  const std::int32_t* p = ids.data();
  for (std::size_t i = 0; i < ids.numel(); ++i) {
    if (ignorable && p[i] == ignore) continue;
    if (p[i] < 0 || static_cast<std::size_t>(p[i]) >= limit)
      fail<InvalidArgument>(what, ": id ", p[i], " at position ", i, " is outside [0, ", limit, ")",
                            ignorable ? " and is not the ignore index " : "",
                            ignorable ? std::to_string(ignore) : "");
  }
}

// Below this many elements an element-wise loop runs on the calling thread: waking the OpenMP team
// costs more than the loop.
inline constexpr std::size_t parallel_grain = 1 << 15;

// Calls f(begin, end) over [0, n) split into one contiguous range per thread (static, so the split is
// a pure function of n and the thread count).
template <class F>
void parallel_ranges(std::size_t n, F&& f, std::size_t grain = parallel_grain) {
  if (n < 2 * grain || omp_get_max_threads() == 1) {
    f(std::size_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const std::size_t threads = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    // Range boundaries on multiples of 16 elements keep SIMD loads aligned and cache lines unshared.
    const std::size_t per = ((n + threads - 1) / threads + 15) / 16 * 16;
    const std::size_t begin = std::min(n, t * per), end = std::min(n, begin + per);
    if (begin < end) f(begin, end);
  }
}

// out[i] = f(in[i]...) for i in [0, n), f a generic callable evaluated on xsimd batches. The tail goes
// through the same batch code on a zero-padded copy, so every element sees identical arithmetic
// whatever the split. `out` may alias an input (the update is element-wise).
template <class T, class F, class... In>
void simd_map(std::size_t n, F&& f, T* out, const In*... in) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  parallel_ranges(n, [&](std::size_t begin, std::size_t end) {
    std::size_t i = begin;
    for (; i + W <= end; i += W) f(Batch::load_unaligned(in + i)...).store_unaligned(out + i);
    if (i < end) {
      const std::size_t r = end - i;
      auto tail = [&](const T* p) {
        alignas(64) std::array<T, W> buf{};
        std::copy(p + i, p + i + r, buf.begin());
        return Batch::load_aligned(buf.data());
      };
      alignas(64) std::array<T, W> res{};
      f(tail(in)...).store_aligned(res.data());
      std::copy(res.begin(), res.begin() + r, out + i);
    }
  });
}

// Sum of g(i) over [0, n) in double, deterministic: a fixed split into `blocks` partial sums that does
// not depend on the thread count, added in order.
template <class G>
double deterministic_sum(std::size_t n, G&& g) {
  constexpr std::size_t blocks = 64;
  std::array<double, blocks> partial{};
  const std::size_t per = (n + blocks - 1) / blocks;
  const bool parallel = n >= 2 * parallel_grain && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t begin = std::min(n, b * per), end = std::min(n, begin + per);
    // Eight independent accumulators: the loop vectorises without reassociating a single sum.
    std::array<double, 8> acc{};
    std::size_t i = begin;
    for (; i + 8 <= end; i += 8)
      for (std::size_t j = 0; j < 8; ++j) acc[j] += g(i + j);
    for (; i < end; ++i) acc[0] += g(i);
    double s = 0;
    for (double a : acc) s += a;
    partial[b] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace detail
}  // namespace p4lm::ops
