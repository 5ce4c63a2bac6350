#pragma once
// Global gradient-norm clipping over many tensors (torch.nn.utils.clip_grad_norm_).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <omp.h>
#include <xsimd/xsimd.hpp>

#include "p4lm/backend/cpu/simd.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {

// Σ x² over [0, n) in double. A float's square is exact in double (24-bit mantissas, 48-bit product),
// so converting first loses nothing, and the loop runs at memory speed once it has four independent
// accumulators (the compiler's version of the generic per-element sum did not).
inline double sum_squares(const float* d, std::size_t n) {
  std::size_t i = 0;
  double s = 0;
#if defined(__AVX2__) && defined(__FMA__)
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 16 <= n; i += 16) {
    const __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(d + i)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(d + i + 4)),
                  x2 = _mm256_cvtps_pd(_mm_loadu_ps(d + i + 8)),
                  x3 = _mm256_cvtps_pd(_mm_loadu_ps(d + i + 12));
    a0 = _mm256_fmadd_pd(x0, x0, a0);
    a1 = _mm256_fmadd_pd(x1, x1, a1);
    a2 = _mm256_fmadd_pd(x2, x2, a2);
    a3 = _mm256_fmadd_pd(x3, x3, a3);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; i < n; ++i) s += double(d[i]) * double(d[i]);
  return s;
}

inline double sum_squares(const double* d, std::size_t n) {
  using Batch = xsimd::batch<double>;
  constexpr std::size_t W = Batch::size;
  Batch a0(0.0), a1(0.0), a2(0.0), a3(0.0);
  std::size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const Batch x0 = Batch::load_unaligned(d + i), x1 = Batch::load_unaligned(d + i + W),
                x2 = Batch::load_unaligned(d + i + 2 * W), x3 = Batch::load_unaligned(d + i + 3 * W);
    a0 = backend::cpu_simd::fma(x0, x0, a0);
    a1 = backend::cpu_simd::fma(x1, x1, a1);
    a2 = backend::cpu_simd::fma(x2, x2, a2);
    a3 = backend::cpu_simd::fma(x3, x3, a3);
  }
  double s = xsimd::hadd((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += d[i] * d[i];
  return s;
}

// Σ x² of one tensor: a fixed split into 64 blocks (a pure function of n), summed on the OpenMP team
// when the tensor is large, added in order, so the result does not depend on the thread count.
template <class T>
double tensor_sum_squares(const T* d, std::size_t n, bool may_parallel) {
  constexpr std::size_t blocks = 64;
  std::array<double, blocks> partial{};
  const std::size_t per = ((n + blocks - 1) / blocks + 15) / 16 * 16;  // 16-element multiples
  const bool parallel = may_parallel && n >= 2 * parallel_grain && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t begin = std::min(n, b * per), end = std::min(n, begin + per);
    partial[b] = sum_squares(d + begin, end - begin);
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace detail

// grads: any number of tensors of any shapes -> ‖(all elements)‖₂, summed in double in a fixed order
// (the same on any thread count). Small tensors (biases, norms) are spread over the threads one per
// task; a large one is split into blocks across them.
template <Scalar T>
double global_grad_norm(std::span<const CpuView<T>> grads) {
  std::vector<double> sq(grads.size(), 0.0);
  const auto count = static_cast<std::ptrdiff_t>(grads.size());
  std::size_t small_total = 0;
  for (const auto& g : grads)
    if (g.numel() < 2 * detail::parallel_grain) small_total += g.numel();
  const bool parallel = small_total >= 2 * detail::parallel_grain && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(dynamic, 4) if (parallel)
  for (std::ptrdiff_t k = 0; k < count; ++k) {
    const auto& g = grads[std::size_t(k)];
    if (g.numel() < 2 * detail::parallel_grain)
      sq[std::size_t(k)] = detail::tensor_sum_squares(g.data(), g.numel(), false);
  }
  for (std::size_t k = 0; k < grads.size(); ++k)
    if (grads[k].numel() >= 2 * detail::parallel_grain)
      sq[k] = detail::tensor_sum_squares(grads[k].data(), grads[k].numel(), true);
  double total = 0;
  for (double x : sq) total += x;
  return std::sqrt(total);
}

// grads as above -> returns the global norm before clipping; when it exceeds max_norm every tensor is
// scaled in place by max_norm / (norm + 1e-6) (PyTorch's formula). A non-finite norm scales nothing:
// the caller sees it in the return value and should skip the step.
template <Scalar T>
double clip_grad_norm(std::span<const CpuView<T>> grads, double max_norm) {
  check::clip_max_norm(max_norm);
  const double norm = global_grad_norm<T>(grads);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const T scale = T(max_norm / (norm + 1e-6));
  for (CpuView<T> g : grads) {  // a copy of the view: its data() is writable
    T* d = g.data();
    detail::simd_map(
        g.numel(), [scale](auto x) { return x * scale; }, d, static_cast<const T*>(d));
  }
  return norm;
}

// The same for a vector of views (template deduction cannot see through std::span's conversions).
template <Scalar T>
double global_grad_norm(const std::vector<CpuView<T>>& grads) {
  return global_grad_norm<T>(std::span<const CpuView<T>>(grads));
}
template <Scalar T>
double clip_grad_norm(const std::vector<CpuView<T>>& grads, double max_norm) {
  return clip_grad_norm<T>(std::span<const CpuView<T>>(grads), max_norm);
}

}  // namespace p4lm::ops
