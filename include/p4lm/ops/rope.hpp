#pragma once
// Rotary position embeddings (Su et al.), in the convention of Meta's Llama reference and llama2.c
// (which the bundled stories260K uses): adjacent pairs (x[2i], x[2i+1]) of every head rotate by the
// angle pos * theta^(-2i/D):
//   out[2i]   = x[2i] cos - x[2i+1] sin
//   out[2i+1] = x[2i] sin + x[2i+1] cos
// (Hugging Face's Llama rotates halves (x[i], x[i + D/2]) instead, with permuted q/k weights.)
//
// Layout (B, T, H, D), the layout ops::attention takes q and k in. Positions are explicit per
// (batch, token), so soft-token prefixes, left padding and KV-cache decoding (T = 1 at position L)
// all use the same op. Angles are computed in double, once per (batch, token) for all heads.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
template <class T>
void rope_apply(T* out, const T* x, const std::int32_t* pos, std::size_t batch, std::size_t tokens,
                std::size_t heads, std::size_t d, bool shared_positions, double theta, double sign,
                bool accumulate) {
  const std::size_t half = d / 2;
  static thread_local std::vector<double> inv_freq;  // the calling thread's; read by the team
  inv_freq.resize(half);
  for (std::size_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(theta, -static_cast<double>(2 * i) / static_cast<double>(d));
  const double* freq = inv_freq.data();
  const auto n = static_cast<std::ptrdiff_t>(batch * tokens);
#pragma omp parallel if (batch * tokens * heads * d > 16384)
  {
    static thread_local std::vector<T> cs;  // (cos, sin) per pair for one token; grows, then reused
    cs.resize(2 * half);
#pragma omp for schedule(static)
    for (std::ptrdiff_t bt = 0; bt < n; ++bt) {
      const std::size_t t = static_cast<std::size_t>(bt) % tokens;
      const double p = static_cast<double>(pos[shared_positions ? t : static_cast<std::size_t>(bt)]);
      for (std::size_t i = 0; i < half; ++i) {
        const double a = p * freq[i];
        cs[2 * i] = static_cast<T>(std::cos(a));
        cs[2 * i + 1] = static_cast<T>(sign * std::sin(a));
      }
      for (std::size_t h = 0; h < heads; ++h) {
        const std::size_t base = (static_cast<std::size_t>(bt) * heads + h) * d;
        const T* xr = x + base;
        T* orow = out + base;
        for (std::size_t i = 0; i < half; ++i) {
          const T c = cs[2 * i], s = cs[2 * i + 1];
          const T x0 = xr[2 * i], x1 = xr[2 * i + 1];
          const T y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
          if (accumulate) {
            orow[2 * i] += y0;
            orow[2 * i + 1] += y1;
          } else {
            orow[2 * i] = y0;
            orow[2 * i + 1] = y1;
          }
        }
      }
    }
  }
}

}  // namespace detail

// x (B, T, H, D), positions (B, T) or (T) (shared by the batch) -> out (B, T, H, D); out may alias x.
template <Scalar T>
void rope_forward(CpuView<T> out, const CpuView<T>& x, const CpuIds& positions, double theta = 10000.0) {
  const bool shared = check::rope("rope_forward", "out", out, x, positions);
  detail::rope_apply(out.data(), x.data(), positions.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), shared,
                     theta, 1.0, false);
}

// Accumulates dx += R(-angle) dout (the rotation's transpose). dout, dx (B, T, H, D); positions as in
// the forward pass. dx must not alias dout.
template <Scalar T>
void rope_backward(CpuView<T> dx, const CpuView<T>& dout, const CpuIds& positions, double theta = 10000.0) {
  const bool shared = check::rope("rope_backward", "dx", dx, dout, positions);
  detail::rope_apply(dx.data(), dout.data(), positions.data(), dout.dim(0), dout.dim(1), dout.dim(2),
                     dout.dim(3), shared, theta, -1.0, true);
}

}  // namespace p4lm::ops
