#pragma once
// Internal to p4lm::cf; include <p4lm/cf/split.hpp> or <p4lm/cf/als.hpp> instead.
// Platform-independent draws from std::mt19937_64, whose output sequence the standard fixes;
// std::uniform_*_distribution and std::normal_distribution are implementation-defined, so splits and
// initial factors would differ between standard libraries.

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace p4lm::cf::detail {

// Uniform integer in [0, n), unbiased (rejects the top partial block of 2^64).
inline std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = max - (max % n + 1) % n;  // largest multiple of n, minus 1
  std::uint64_t x = rng();
  while (x > limit) x = rng();
  return x % n;
}

// Uniform double in [0, 1) from the top 53 bits.
inline double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Standard normal by Box-Muller (one value per call; the second is dropped for simplicity).
inline double standard_normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log stays finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace p4lm::cf::detail
