#pragma once
// SwiGLU gate (Llama MLP) on CUDA: out = silu(gate) ⊙ up, element-wise via thrust (ops/swiglu.hpp).

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
struct SwigluForward {
  float* out;
  const float* gate;
  const float* up;
  __device__ void operator()(std::size_t i) const {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
};
struct SwigluBackward {
  float* dgate;  // either may be null
  float* dup;
  const float* dout;
  const float* gate;
  const float* up;
  __device__ void operator()(std::size_t i) const {
    const float g = gate[i], d = dout[i];
    const float s = 1.0f / (1.0f + expf(-g));
    if (dgate) dgate[i] += d * up[i] * s * (1.0f + g * (1.0f - s));
    if (dup) dup[i] += d * g * s;
  }
};
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// gate (..., H), up (..., H) -> out (..., H) = silu(gate) · up
inline void swiglu_forward(CudaView out, const CudaView& gate, const CudaView& up) {
  check::swiglu_forward(out, gate, up);
  cuda::detail::for_each_index("swiglu_forward", gate.numel(),
                               cuda::detail::SwigluForward{out.data(), gate.data(), up.data()});
}

// dout, gate, up (..., H) -> dgate += dout · up · silu'(gate), dup += dout · silu(gate); either may be {}
inline void swiglu_backward(CudaView dgate, CudaView dup, const CudaView& dout, const CudaView& gate,
                            const CudaView& up) {
  check::swiglu_backward(dgate, dup, dout, gate, up);
  const bool dg = is_given(dgate), du = is_given(dup);
  if (!dg && !du) return;
  cuda::detail::for_each_index(
      "swiglu_backward", gate.numel(),
      cuda::detail::SwigluBackward{dg ? dgate.data() : nullptr, du ? dup.data() : nullptr, dout.data(),
                                   gate.data(), up.data()});
}

}  // namespace p4lm::ops
