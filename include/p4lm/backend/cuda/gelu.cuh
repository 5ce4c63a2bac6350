#pragma once
// GELU (tanh approximation, GPT-2) on CUDA: the same formula as ops/gelu.hpp, element-wise via thrust.

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
inline constexpr float gelu_scale = 0.7978845608028654f;  // √(2/π)
inline constexpr float gelu_cube = 0.044715f;

struct GeluForward {
  float* out;
  const float* inp;
  __device__ void operator()(std::size_t i) const {
    const float x = inp[i];
    const float u = gelu_scale * (x + gelu_cube * x * x * x);
    out[i] = 0.5f * x * (1.0f + tanhf(u));
  }
};
struct GeluBackward {
  float* dinp;
  const float* dout;
  const float* inp;
  __device__ void operator()(std::size_t i) const {
    const float x = inp[i], x2 = x * x;
    const float th = tanhf(gelu_scale * (x + gelu_cube * x2 * x));
    const float local =
        0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * gelu_scale * (1.0f + 3.0f * gelu_cube * x2);
    dinp[i] += dout[i] * local;
  }
};
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// inp (any shape) -> out (same shape); out may alias inp
inline void gelu_forward(CudaView out, const CudaView& inp) {
  check::unary_forward("gelu_forward", out, inp);
  cuda::detail::for_each_index("gelu_forward", inp.numel(),
                               cuda::detail::GeluForward{out.data(), inp.data()});
}

// dout, inp (same shape) -> dinp (same shape) += dout · gelu'(inp)
inline void gelu_backward(CudaView dinp, const CudaView& dout, const CudaView& inp) {
  check::unary_backward("gelu_backward", dinp, dout, inp);
  cuda::detail::for_each_index("gelu_backward", inp.numel(),
                               cuda::detail::GeluBackward{dinp.data(), dout.data(), inp.data()});
}

}  // namespace p4lm::ops
