#pragma once
// Which elements inverted dropout keeps: one definition for the CPU op, the CUDA kernel and the tests.
//
// Element i draws 16 bits, half of Philox word i / 2 of (seed, stream): the low half for even i, the
// high half for odd i. It is kept iff its draw is at least `drop_below` = round(p · 2^16), so the
// keep probability is exactly (2^16 - drop_below) / 2^16 and `scale` is its inverse: E[out] = inp
// for every p, with p itself rounded to a multiple of 2^-16 (below 2^-17 nothing is dropped, above
// 1 - 2^-17 everything is). Half a word per element halves the generator's work, which is what bounds
// the CPU op (FlashAttention's fused dropout draws only 8 bits per element).
//
//   const auto mask = ops::DropoutMask::for_probability(0.1);
//   bool kept = mask.keeps(seed, stream, i);

#include <cstdint>

#include "p4lm/core/host_device.hpp"
#include "p4lm/core/rng.hpp"

namespace p4lm::ops {

struct DropoutMask {
  static constexpr std::uint32_t levels = 1u << 16;

  std::uint32_t drop_below = 0;  // in [0, 2^16]: 0 keeps everything, 2^16 drops everything
  double scale = 1.0;            // 2^16 / (2^16 - drop_below); 0 when everything is dropped

  // p in [0, 1) (the ops check it first).
  static constexpr DropoutMask for_probability(double p) noexcept {
    DropoutMask mask;
    const double levels_dropped = p * double(levels) + 0.5;  // round half up, p >= 0
    mask.drop_below = levels_dropped >= double(levels) ? levels : static_cast<std::uint32_t>(levels_dropped);
    mask.scale = mask.drop_below == levels ? 0.0 : double(levels) / double(levels - mask.drop_below);
    return mask;
  }

  // The 16 random bits of element `index`, given Philox word index / 2 (kernels that expand a whole
  // block of words take their halves here).
  P4LM_HOST_DEVICE static constexpr std::uint32_t half_of(std::uint32_t word, std::uint64_t index) noexcept {
    return (word >> (16 * (index & 1))) & 0xFFFFu;
  }
  // The 16 random bits of element `index`.
  P4LM_HOST_DEVICE static constexpr std::uint32_t draw(std::uint64_t seed, std::uint64_t stream,
                                                       std::uint64_t index) noexcept {
    return half_of(Rng::u32_at(seed, stream, index >> 1), index);
  }

  P4LM_HOST_DEVICE constexpr bool keeps(std::uint64_t seed, std::uint64_t stream,
                                        std::uint64_t index) const noexcept {
    return draw(seed, stream, index) >= drop_below;
  }
};

}  // namespace p4lm::ops
