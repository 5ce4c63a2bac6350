#pragma once
// Inverted dropout whose mask is a pure function of (seed, stream, element index): element i is kept
// iff Rng::uniform_at(seed, stream, i) >= p. Same mask on any thread count and on CUDA, and backward
// recomputes it instead of storing it.

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "p4lm/core/rng.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/philox_blocks.hpp"

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
  // u32_to_unit_float(w) >= p  <=>  (w >> 8) · 2^-24 >= float(p)  <=>  (w >> 8) >= ceil(float(p) · 2^24):
  // the same test on integers, exact (both sides are integers times 2^-24, float(p) · 2^24 is exact).
  const auto threshold = static_cast<std::uint32_t>(std::ceil(double(static_cast<float>(p)) * 16777216.0));
  const PhiloxSchedule sched(
      stream, Philox4x32::Key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  if (threshold >= (1u << 24)) {  // p within 2^-25 of 1 rounds to 1.0f: every element is dropped
    parallel_ranges(n, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) y[i] = acc ? acc[i] + T(0) : T(0);
    });
    return;
  }
  // ... and (w >> 8) >= t  <=>  w >= t · 2^8 (as t < 2^24): one unsigned compare, no shift.
  const std::uint32_t word_threshold = threshold << 8;
  // m <= step elements from i on, their words in w. The kept value is selected by masking its bits
  // (a branch-free form the compiler vectorises; a dropped element is +0 as before, even if x is NaN).
  // Everything by value: a captured reference could alias y and would block vectorisation.
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  auto apply = [scale, word_threshold](T* yi, const T* acci, const T* xi, std::size_t m,
                                       const std::uint32_t* w) {
    for (std::size_t j = 0; j < m; ++j) {
      const U mask = U(0) - U(w[j] >= word_threshold);
      const T kept = std::bit_cast<T>(std::bit_cast<U>(xi[j] * scale) & mask);
      yi[j] = acci ? acci[j] + kept : kept;
    }
  };
  // 8 Philox blocks (two vector chains) per step: more chains spill the 16 AVX2 registers, fewer
  // leave the multiplies waiting on their latency (4 or 16 blocks: slower). Drawing the words of 1024
  // elements into an L1 buffer first, then applying them, was slower at 4096 x 768: memory then
  // idles while the generator runs, where here the loads and stores overlap it.
  constexpr std::size_t blocks = 8, step = 4 * blocks;
  parallel_ranges(n, [&](std::size_t begin, std::size_t end) {
    // Ranges start on multiples of 16 elements, so on Philox block boundaries (4 words per block).
    alignas(32) std::uint32_t words[step];
    std::size_t i = begin;
    for (; i + step <= end; i += step) {
      philox_blocks<blocks>(i >> 2, sched, words);
      apply(y + i, acc ? acc + i : nullptr, x + i, step, words);
    }
    if (i < end) {  // the tail draws blocks it does not use: the words are a pure function of i
      philox_blocks<blocks>(i >> 2, sched, words);
      apply(y + i, acc ? acc + i : nullptr, x + i, end - i, words);
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
