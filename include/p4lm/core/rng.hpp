#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11). A number is a pure function
// of (seed, stream, index), so the same seed gives the same numbers on any thread count and on the
// CPU and in CUDA kernels alike (the block function is P4LM_HOST_DEVICE).
//
//   Rng rng(42);                 // stream 0
//   float u = rng.uniform();     // sequential use
//   Rng dropout = rng.split(7);  // an independent stream
//   float v = Rng::uniform_at(42, 7, i);  // element i of stream 7, from any thread

#include <array>
#include <cmath>
#include <cstdint>

#include "p4lm/core/host_device.hpp"

namespace p4lm {

struct Philox4x32 {
  using Block = std::array<std::uint32_t, 4>;
  using Key = std::array<std::uint32_t, 2>;

  P4LM_HOST_DEVICE static constexpr Block generate(Block counter, Key key) noexcept {
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * counter[0];
      const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * counter[2];
      counter = {static_cast<std::uint32_t>(p1 >> 32) ^ counter[1] ^ key[0], static_cast<std::uint32_t>(p1),
                 static_cast<std::uint32_t>(p0 >> 32) ^ counter[3] ^ key[1], static_cast<std::uint32_t>(p0)};
      key[0] += 0x9E3779B9u;
      key[1] += 0xBB67AE85u;
    }
    return counter;
  }
};

// Maps 32 random bits to a float in [0, 1) using the top 24 bits (exactly representable).
P4LM_HOST_DEVICE constexpr float u32_to_unit_float(std::uint32_t bits) noexcept {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

class Rng {
 public:
  using Block = Philox4x32::Block;

  explicit constexpr Rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept
      : seed_(seed), stream_(stream) {}

  constexpr std::uint64_t seed() const noexcept { return seed_; }
  constexpr std::uint64_t stream() const noexcept { return stream_; }
  // Position in the stream (number of 32-bit words consumed): saved with checkpoints to resume.
  constexpr std::uint64_t position() const noexcept { return position_; }
  constexpr void set_position(std::uint64_t position) noexcept { position_ = position; }

  // An independent stream derived from this generator's seed (a different counter range).
  constexpr Rng split(std::uint64_t stream) const noexcept { return Rng(seed_, stream); }

  // Word `index` of stream `stream` for `seed`: stateless, so parallel loops call it per element.
  P4LM_HOST_DEVICE static constexpr std::uint32_t u32_at(std::uint64_t seed, std::uint64_t stream,
                                                         std::uint64_t index) noexcept {
    const std::uint64_t block = index >> 2;
    const Block counter{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                        static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)};
    const Block out = Philox4x32::generate(
        counter, {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
    return out[index & 3];
  }
  P4LM_HOST_DEVICE static constexpr float uniform_at(std::uint64_t seed, std::uint64_t stream,
                                                     std::uint64_t index) noexcept {
    return u32_to_unit_float(u32_at(seed, stream, index));
  }

  constexpr std::uint32_t next_u32() noexcept {
    if ((position_ & 3) == 0 || position_ != buffered_at_ + (position_ & 3)) refill();
    return buffer_[position_++ & 3];
  }
  constexpr std::uint64_t next_u64() noexcept {
    const std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform in [0, 1).
  constexpr float uniform() noexcept { return u32_to_unit_float(next_u32()); }
  double uniform_double() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), without modulo bias (Lemire's multiply-shift with rejection).
  constexpr std::uint64_t below(std::uint64_t n) noexcept {
    if (n <= 1) return 0;
    if (n <= 0xFFFFFFFFull) {
      const std::uint32_t bound = static_cast<std::uint32_t>(n);
      const std::uint32_t threshold = static_cast<std::uint32_t>(-bound) % bound;
      while (true) {
        const std::uint64_t product = std::uint64_t{next_u32()} * bound;
        if (static_cast<std::uint32_t>(product) >= threshold) return product >> 32;
      }
    }
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    while (true) {
      const std::uint64_t x = next_u64();
      if (x < limit) return x % n;
    }
  }
  // Standard normal (Box-Muller on two uniforms; the second value is discarded for simplicity).
  double normal() noexcept {
    const double u1 = 1.0 - uniform_double();  // (0, 1]
    const double u2 = uniform_double();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  constexpr void refill() noexcept {
    buffered_at_ = position_ & ~std::uint64_t{3};
    const std::uint64_t block = position_ >> 2;
    buffer_ =
        Philox4x32::generate({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                              static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)},
                             {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
  }

  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t position_ = 0;
  std::uint64_t buffered_at_ = ~std::uint64_t{0};
  Block buffer_{};
};

}  // namespace p4lm
