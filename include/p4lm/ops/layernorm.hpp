#pragma once
// LayerNorm over the last dimension (GPT-2): out = (x - mean) * rstd * weight + bias.
//
// Memory-bound, so each row is read from memory once: the statistics come from one pass (sum and
// sum of squares of x - x[0], shifted so the variance does not cancel), and the normalisation reads
// the row again from L1. Rows are split across OpenMP threads.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <type_traits>

#include <omp.h>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
// Mean and 1/sqrt(var + eps) of one row, one pass. Shifting by the first element keeps
// E[d^2] - E[d]^2 from cancelling when |mean| >> std.
template <class T>
inline void row_mean_rstd(const T* x, std::size_t c, T eps, T& mean, T& rstd) {
  const T shift = x[0];
  T sum = 0, sumsq = 0;
#pragma omp simd reduction(+ : sum, sumsq)
  for (std::size_t i = 0; i < c; ++i) {
    const T d = x[i] - shift;
    sum += d;
    sumsq += d * d;
  }
  const T m = sum / T(c);
  const T var = std::max(sumsq / T(c) - m * m, T(0));
  mean = shift + m;
  rstd = T(1) / std::sqrt(var + eps);
}
}  // namespace detail

// x (..., C), weight (C), bias (C) -> out (..., C) (may alias x);
// mean, rstd: one element per row of x (cached for the backward pass).
template <Scalar T>
void layernorm_forward(CpuView<T> out, CpuView<T> mean, CpuView<T> rstd, const CpuView<T>& x,
                       const CpuView<T>& weight, const CpuView<T>& bias,
                       std::type_identity_t<T> eps = T(1e-5)) {
  const std::size_t c = check::layernorm_forward(out, mean, rstd, x, weight, bias);
  const std::size_t rows = x.shape().rows();
  if (c == 0) return;
  const T* xp = x.data();
  const T* w = weight.data();
  const T* b = bias.data();
  T* o = out.data();
  T* mp = mean.data();
  T* rp = rstd.data();
  const auto n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel for schedule(static) if (rows * c > 16384)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const T* xr = xp + r * c;
    T* orow = o + r * c;
    T m, s;
    detail::row_mean_rstd(xr, c, eps, m, s);
#pragma omp simd
    for (std::size_t i = 0; i < c; ++i) orow[i] = (xr[i] - m) * s * w[i] + b[i];
    mp[r] = m;
    rp[r] = s;
  }
}

// Accumulates: dx += d out/d x . dout, dweight += sum_rows dout * xhat, dbias += sum_rows dout.
// dout, x (..., C); weight (C); mean, rstd from layernorm_forward. dx must not alias dout.
template <Scalar T>
void layernorm_backward(CpuView<T> dx, CpuView<T> dweight, CpuView<T> dbias, const CpuView<T>& dout,
                        const CpuView<T>& x, const CpuView<T>& weight, const CpuView<T>& mean,
                        const CpuView<T>& rstd) {
  const std::size_t c = check::layernorm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  const T* xp = x.data();
  const T* dop = dout.data();
  const T* w = weight.data();
  const T* mp = mean.data();
  const T* rp = rstd.data();
  T* dxp = dx.data();
  // dweight/dbias are sums over rows: each thread sums its rows into a private copy, then the copies
  // are added in thread order (deterministic for a fixed thread count). The copies live in a
  // per-thread buffer that only grows, so steps after the first do not allocate.
  const int threads = rows * c > 16384 ? omp_get_max_threads() : 1;
  static thread_local std::vector<T> partial;
  partial.assign(static_cast<std::size_t>(threads) * 2 * c, T(0));
  T* const partials = partial.data();  // the calling thread's buffer, shared with the team
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    T* dw = partials + static_cast<std::size_t>(tid) * 2 * c;
    T* db = dw + c;
    const std::size_t begin = rows * tid / nt, end = rows * (tid + 1) / nt;
    for (std::size_t r = begin; r < end; ++r) {
      const T* xr = xp + r * c;
      const T* dor = dop + r * c;
      T* dxr = dxp + r * c;
      const T m = mp[r], s = rp[r];
      // dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dout * weight.
      T sum_dn = 0, sum_dn_xhat = 0;
#pragma omp simd reduction(+ : sum_dn, sum_dn_xhat)
      for (std::size_t i = 0; i < c; ++i) {
        const T xhat = (xr[i] - m) * s;
        const T dn = dor[i] * w[i];
        sum_dn += dn;
        sum_dn_xhat += dn * xhat;
        dw[i] += dor[i] * xhat;
        db[i] += dor[i];
      }
      const T mean_dn = sum_dn / T(c), mean_dn_xhat = sum_dn_xhat / T(c);
#pragma omp simd
      for (std::size_t i = 0; i < c; ++i) {
        const T xhat = (xr[i] - m) * s;
        dxr[i] += s * (dor[i] * w[i] - mean_dn - xhat * mean_dn_xhat);
      }
    }
  }
  T* dwp = dweight.data();
  T* dbp = dbias.data();
  for (int t = 0; t < threads; ++t) {
    const T* dw = partials + static_cast<std::size_t>(t) * 2 * c;
    for (std::size_t i = 0; i < c; ++i) {
      dwp[i] += dw[i];
      dbp[i] += dw[c + i];
    }
  }
}

}  // namespace p4lm::ops
