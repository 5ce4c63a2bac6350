#pragma once
// Inverted dropout whose mask is a pure function of (seed, stream, element index), defined in
// ops/dropout_mask.hpp: the same mask on any thread count and on CUDA, and backward recomputes it
// instead of storing it.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/philox_blocks.hpp"
#include "p4lm/ops/dropout_mask.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
// y[i] = acc[i] + x[i] · scale · keep(i) over [0, n) (acc may be null: plain write).
template <class T>
void dropout_apply(std::size_t n, T* y, const T* acc, const T* x, double p, std::uint64_t seed,
                   std::uint64_t stream) {
  const DropoutMask mask = DropoutMask::for_probability(p);
  // The generator costs far more per element than the loads and stores: split small inputs too.
  constexpr std::size_t grain = 1 << 12;
  if (mask.drop_below == DropoutMask::levels) {  // every element is dropped
    parallel_ranges(
        n,
        [&](std::size_t begin, std::size_t end) {
          for (std::size_t i = begin; i < end; ++i) y[i] = acc ? acc[i] + T(0) : T(0);
        },
        grain);
    return;
  }
  const T scale = T(mask.scale);
  const std::uint32_t drop_below = mask.drop_below;
  const PhiloxSchedule sched(
      stream, Philox4x32::Key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  // m <= step elements from i on, their draws in h. The kept value is selected by masking its bits
  // (a branch-free form the compiler vectorises; a dropped element is +0, even if x is NaN).
  // Everything by value: a captured reference could alias y and would block vectorisation.
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  auto apply = [scale, drop_below](T* yi, const T* acci, const T* xi, std::size_t m, const std::uint16_t* h) {
    for (std::size_t j = 0; j < m; ++j) {
      const U keep = U(0) - U(h[j] >= drop_below);
      const T kept = std::bit_cast<T>(std::bit_cast<U>(xi[j] * scale) & keep);
      yi[j] = acci ? acci[j] + kept : kept;
    }
  };
  // Element i's draw is the low (even i) or high (odd i) half of word i / 2: on a little-endian host
  // the words' bytes read as 16-bit values are the draws in element order.
  static_assert(std::endian::native == std::endian::little, "dropout reads Philox words as 16-bit halves");
  // 8 Philox blocks (two AVX2 vector chains) per step, 64 elements: more chains spill the 16 AVX2
  // registers, fewer leave the multiplies waiting on their latency. Drawing a larger buffer first,
  // then applying it, was slower: memory then idles while the generator runs, where here the loads and
  // stores overlap it.
  constexpr std::size_t blocks = 8, words = 4 * blocks, step = 2 * words;
  parallel_ranges(
      n,
      [&](std::size_t begin, std::size_t end) {
        // Ranges start on multiples of 16 elements, so on Philox block boundaries (8 elements a block).
        alignas(32) std::uint32_t w[words];
        alignas(32) std::uint16_t h[step];
        std::size_t i = begin;
        for (; i + step <= end; i += step) {
          philox_blocks<blocks>(i >> 3, sched, w);
          std::memcpy(h, w, sizeof w);
          apply(y + i, acc ? acc + i : nullptr, x + i, step, h);
        }
        if (i < end) {  // the tail draws blocks it does not use: the draws are a pure function of i
          philox_blocks<blocks>(i >> 3, sched, w);
          std::memcpy(h, w, sizeof w);
          apply(y + i, acc ? acc + i : nullptr, x + i, end - i, h);
        }
      },
      grain);
}
}  // namespace detail

// inp (any shape) -> out (same shape) = inp · mask · scale, p in [0, 1) (DropoutMask: p rounded to a
// multiple of 2^-16, scale = 1 / keep probability). Use a different stream (or seed) per layer and per
// step to get independent masks.
template <Scalar T>
void dropout_forward(CpuView<T> out, const CpuView<T>& inp, double p, std::uint64_t seed,
                     std::uint64_t stream) {
  check::dropout("dropout_forward", "out", out, inp, p);
  detail::dropout_apply<T>(inp.numel(), out.data(), nullptr, inp.data(), p, seed, stream);
}

// dout (any shape) -> dinp (same shape) += dout · mask · scale, same (p, seed, stream) as forward
template <Scalar T>
void dropout_backward(CpuView<T> dinp, const CpuView<T>& dout, double p, std::uint64_t seed,
                      std::uint64_t stream) {
  check::dropout("dropout_backward", "dinp", dinp, dout, p);
  detail::dropout_apply<T>(dout.numel(), dinp.data(), dinp.data(), dout.data(), p, seed, stream);
}

}  // namespace p4lm::ops
