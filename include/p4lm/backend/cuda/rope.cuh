#pragma once
// Rotary position embeddings on CUDA (ops/rope.hpp: adjacent pairs, llama2.c's convention; layout
// (B, T, H, D); positions (B, T) or (T)). One thread per (b, t, h, pair); the angle, its cosine and
// sine are computed in double as on the CPU, so both sides round the same double values to float.

#include <cstddef>
#include <cstdint>
#include <string>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {

struct RopeApply {
  float* out;
  const float* x;
  const std::int32_t* pos;
  std::size_t tokens, heads, half;
  bool shared_positions;
  double theta;
  double sign;
  bool accumulate;
  __device__ void operator()(std::size_t idx) const {
    const std::size_t i = idx % half;
    const std::size_t bth = idx / half;  // (b * T + t) * H + h
    const std::size_t bt = bth / heads;
    const std::size_t t = bt % tokens;
    const double p = static_cast<double>(pos[shared_positions ? t : bt]);
    const double a = p * pow(theta, -static_cast<double>(2 * i) / static_cast<double>(2 * half));
    const float c = static_cast<float>(cos(a)), s = static_cast<float>(sign * sin(a));
    const std::size_t base = bth * 2 * half + 2 * i;
    const float x0 = x[base], x1 = x[base + 1];
    const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
    if (accumulate) {
      out[base] += y0;
      out[base + 1] += y1;
    } else {
      out[base] = y0;
      out[base + 1] = y1;
    }
  }
};

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// x (B, T, H, D), positions (B, T) or (T) -> out (B, T, H, D); out may alias x
inline void rope_forward(CudaView out, const CudaView& x, const CudaIds& positions, double theta = 10000.0) {
  const bool shared = check::rope("rope_forward", "out", out, x, positions);
  cuda::detail::for_each_index("rope_forward", x.numel() / 2,
                               cuda::detail::RopeApply{out.data(), x.data(), positions.data(), x.dim(1),
                                                       x.dim(2), x.dim(3) / 2, shared, theta, 1.0, false});
}

// Accumulates dx += R(-angle) dout. dx must not alias dout.
inline void rope_backward(CudaView dx, const CudaView& dout, const CudaIds& positions,
                          double theta = 10000.0) {
  const bool shared = check::rope("rope_backward", "dx", dx, dout, positions);
  cuda::detail::for_each_index(
      "rope_backward", dout.numel() / 2,
      cuda::detail::RopeApply{dx.data(), dout.data(), positions.data(), dout.dim(1), dout.dim(2),
                              dout.dim(3) / 2, shared, theta, -1.0, true});
}

}  // namespace p4lm::ops
