#pragma once
// RMSNorm over the last dimension (Llama): out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps)
// (eps inside the square root, as in llama2.c and Meta's reference). Memory-bound: one pass for the
// statistic, the scaling reads the row again from L1; rows are split across OpenMP threads.

#include <cmath>
#include <cstddef>
#include <vector>

#include <type_traits>

#include <omp.h>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/layernorm.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

// x (..., C), weight (C) -> out (..., C) (may alias x); rstd: one element per row of x (cached).
template <Scalar T>
void rmsnorm_forward(CpuView<T> out, CpuView<T> rstd, const CpuView<T>& x, const CpuView<T>& weight,
                     std::type_identity_t<T> eps = T(1e-5)) {
  const std::size_t c = check::rmsnorm_forward(out, rstd, x, weight);
  const std::size_t rows = x.shape().rows();
  if (c == 0) return;
  const T* xp = x.data();
  const T* w = weight.data();
  T* o = out.data();
  T* rp = rstd.data();
  const auto n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel for schedule(static) if (rows * c > 16384)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const T* xr = xp + r * c;
    T* orow = o + r * c;
    T sumsq = 0;
#pragma omp simd reduction(+ : sumsq)
    for (std::size_t i = 0; i < c; ++i) sumsq += xr[i] * xr[i];
    const T s = T(1) / std::sqrt(sumsq / T(c) + eps);
#pragma omp simd
    for (std::size_t i = 0; i < c; ++i) orow[i] = xr[i] * s * w[i];
    rp[r] = s;
  }
}

// Accumulates: dx += (d out/d x) . dout, dweight += sum_rows dout * x * rstd.
// dout, x (..., C); weight (C); rstd from rmsnorm_forward. dx must not alias dout.
template <Scalar T>
void rmsnorm_backward(CpuView<T> dx, CpuView<T> dweight, const CpuView<T>& dout, const CpuView<T>& x,
                      const CpuView<T>& weight, const CpuView<T>& rstd) {
  const std::size_t c = check::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  const T* xp = x.data();
  const T* dop = dout.data();
  const T* w = weight.data();
  const T* rp = rstd.data();
  T* dxp = dx.data();
  const int threads = rows * c > 16384 ? omp_get_max_threads() : 1;
  static thread_local std::vector<T> partial;  // per-thread dweight copies; grows, then reused
  partial.assign(static_cast<std::size_t>(threads) * c, T(0));
  T* const partials = partial.data();  // the calling thread's buffer, shared with the team
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    T* dw = partials + static_cast<std::size_t>(tid) * c;
    const std::size_t begin = rows * tid / nt, end = rows * (tid + 1) / nt;
    for (std::size_t r = begin; r < end; ++r) {
      const T* xr = xp + r * c;
      const T* dor = dop + r * c;
      T* dxr = dxp + r * c;
      const T s = rp[r];
      // dx = s * dn - x * s^3 * mean(dn * x), dn = dout * weight.
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (std::size_t i = 0; i < c; ++i) {
        dot += dor[i] * w[i] * xr[i];
        dw[i] += dor[i] * xr[i] * s;
      }
      const T k = s * s * s * dot / T(c);
#pragma omp simd
      for (std::size_t i = 0; i < c; ++i) dxr[i] += s * dor[i] * w[i] - k * xr[i];
    }
  }
  T* dwp = dweight.data();
  for (int t = 0; t < threads; ++t) {
    const T* dw = partials + static_cast<std::size_t>(t) * c;
    for (std::size_t i = 0; i < c; ++i) dwp[i] += dw[i];
  }
}

}  // namespace p4lm::ops
