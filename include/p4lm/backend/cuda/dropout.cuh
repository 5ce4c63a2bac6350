#pragma once
// Inverted dropout on CUDA with the CPU's mask, bit for bit (ops/dropout_mask.hpp). Each thread expands
// one Philox block: four words, the draws of 8 consecutive elements, as the CPU loop does.

#include <cstddef>
#include <cstdint>

#include "p4lm/backend/cuda/common.cuh"
#include "p4lm/core/rng.hpp"
#include "p4lm/ops/dropout_mask.hpp"

namespace p4lm::cuda::detail {
struct DropoutApply {  // y[i] = (acc ? acc[i] : 0) + x[i] · scale · keep(i), 8 indices per call
  float* y;
  const float* acc;
  const float* x;
  std::size_t n;
  std::uint32_t drop_below;
  float scale;
  std::uint64_t seed;
  std::uint64_t stream;
  __device__ void operator()(std::size_t block) const {
    const Philox4x32::Block words =
        Philox4x32::generate({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                              static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
                             {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
    const std::size_t i0 = block * 8;
    for (std::size_t j = 0; j < 8 && i0 + j < n; ++j) {
      const std::size_t i = i0 + j;
      const std::uint32_t draw = ops::DropoutMask::half_of(words[j >> 1], j);
      const float kept = draw >= drop_below ? x[i] * scale : 0.0f;
      y[i] = acc ? acc[i] + kept : kept;
    }
  }
};
inline void dropout_apply(const char* op, std::size_t n, float* y, const float* acc, const float* x, double p,
                          std::uint64_t seed, std::uint64_t stream) {
  // The scale is rounded from double exactly as the CPU does (T(mask.scale)).
  const auto mask = ops::DropoutMask::for_probability(p);
  for_each_index(op, (n + 7) / 8,
                 DropoutApply{y, acc, x, n, mask.drop_below, static_cast<float>(mask.scale), seed, stream});
}
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// inp (any shape) -> out (same shape) = inp · mask · scale (DropoutMask), p in [0, 1); out may alias inp
inline void dropout_forward(CudaView out, const CudaView& inp, double p, std::uint64_t seed,
                            std::uint64_t stream) {
  check::dropout("dropout_forward", "out", out, inp, p);
  cuda::detail::dropout_apply("dropout_forward", inp.numel(), out.data(), nullptr, inp.data(), p, seed,
                              stream);
}

// dout (any shape) -> dinp (same shape) += dout · mask · scale, same (p, seed, stream) as forward
inline void dropout_backward(CudaView dinp, const CudaView& dout, double p, std::uint64_t seed,
                             std::uint64_t stream) {
  check::dropout("dropout_backward", "dinp", dinp, dout, p);
  cuda::detail::dropout_apply("dropout_backward", dout.numel(), dinp.data(), dinp.data(), dout.data(), p,
                              seed, stream);
}

}  // namespace p4lm::ops
