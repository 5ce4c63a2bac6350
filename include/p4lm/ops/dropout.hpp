#pragma once
// Inverted dropout whose mask is a pure function of (seed, stream, element index): element i is kept
// iff Rng::uniform_at(seed, stream, i) >= p. Same mask on any thread count and on CUDA, and backward
// recomputes it instead of storing it.

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "p4lm/core/rng.hpp"
#include "p4lm/ops/detail/common.hpp"

namespace p4lm::ops {

namespace detail {
inline void check_dropout_p(const char* op, double p) {
  if (!(p >= 0.0 && p < 1.0)) fail<InvalidArgument>(op, ": dropout probability ", p, " is outside [0, 1)");
}
// y[i] = acc[i] + x[i] · scale · keep(i) over [0, n) (acc may be null: plain write).
template <class T>
void dropout_apply(std::size_t n, T* y, const T* acc, const T* x, double p, std::uint64_t seed,
                   std::uint64_t stream) {
  const T scale = T(1.0 / (1.0 - p));
  const float pf = static_cast<float>(p);
  const Philox4x32::Key key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  parallel_ranges(n, [&](std::size_t begin, std::size_t end) {
    // One Philox block gives the words of 4 consecutive indices (ranges start on multiples of 16).
    for (std::size_t i = begin; i < end; i += 4) {
      const std::uint64_t block = i >> 2;
      const auto words =
          Philox4x32::generate({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                                static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
                               key);
      const std::size_t m = end - i < 4 ? end - i : 4;
      for (std::size_t j = 0; j < m; ++j) {
        const T kept = u32_to_unit_float(words[j]) >= pf ? x[i + j] * scale : T(0);
        y[i + j] = acc ? acc[i + j] + kept : kept;
      }
    }
  });
}
}  // namespace detail

// inp (any shape) -> out (same shape) = inp · mask / (1 - p), p in [0, 1).
// Use a different stream (or seed) per layer and per step to get independent masks.
template <Scalar T>
void dropout_forward(CpuView<T> out, const CpuView<T>& inp, double p, std::uint64_t seed,
                     std::uint64_t stream) {
  expect_shape("dropout_forward: out", out.shape(), inp.shape());
  detail::check_dropout_p("dropout_forward", p);
  detail::dropout_apply<T>(inp.numel(), out.data(), nullptr, inp.data(), p, seed, stream);
}

// dout (any shape) -> dinp (same shape) += dout · mask / (1 - p), same (p, seed, stream) as forward
template <Scalar T>
void dropout_backward(CpuView<T> dinp, const CpuView<T>& dout, double p, std::uint64_t seed,
                      std::uint64_t stream) {
  expect_shape("dropout_backward: dinp", dinp.shape(), dout.shape());
  detail::check_dropout_p("dropout_backward", p);
  detail::dropout_apply<T>(dout.numel(), dinp.data(), dinp.data(), dout.data(), p, seed, stream);
}

}  // namespace p4lm::ops
