#pragma once
// Philox-4x32-10 on several consecutive counters at once (do not include directly): the words
// Rng::u32_at(seed, stream, i) for 4 · Blocks consecutive i, bit for bit, for dropout's mask. One block at a
// time (core/rng.hpp) is a chain of twenty dependent 32x32->64-bit multiplies per four words; here
// they run on AVX2 vectors, one counter per 64-bit lane (vpmuludq multiplies exactly the low 32 bits
// of each lane, so the high halves never need clearing). Without AVX2 it falls back to the scalar
// block function.

#include <cstddef>
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "p4lm/core/rng.hpp"

namespace p4lm::ops::detail {

// What every call for one (key, stream) shares: the ten round keys and the stream words, broadcast
// once. Rebuilding them per call (two scalar adds and four broadcasts a round) was a fifth of the work
// of a call; held in memory they are the xors' second operands, loaded for free.
struct PhiloxSchedule {
#if defined(__AVX2__)
  __m256i round_key[10][2];
  __m256i stream_word[2];
#endif
  std::uint64_t stream;
  Philox4x32::Key key;

  PhiloxSchedule(std::uint64_t stream_, Philox4x32::Key key_) noexcept : stream(stream_), key(key_) {
#if defined(__AVX2__)
    std::uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
      round_key[round][0] = _mm256_set1_epi32(static_cast<int>(k0));
      round_key[round][1] = _mm256_set1_epi32(static_cast<int>(k1));
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    stream_word[0] = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(stream)));
    stream_word[1] = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(stream >> 32)));
#endif
  }
};

// out[j] = word j of the stream starting at block `block` (index 4 · block), j in [0, 4 · Blocks).
template <int Blocks = 8>
void philox_blocks(std::uint64_t block, const PhiloxSchedule& sched, std::uint32_t* out) noexcept {
  static_assert(Blocks % 4 == 0);
#if defined(__AVX2__)
  // Groups of four counters, one per 64-bit lane; the groups' multiply chains are independent, so
  // they overlap (one chain alone waits on the multiply latency every round).
  constexpr int G = Blocks / 4;
  __m256i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    const std::uint64_t b = block + 4 * std::uint64_t(g);
    c0[g] = _mm256_set_epi64x(static_cast<long long>(b + 3), static_cast<long long>(b + 2),
                              static_cast<long long>(b + 1), static_cast<long long>(b));
    c1[g] = _mm256_srli_epi64(c0[g], 32);  // low halves: the counters' high words
    c2[g] = sched.stream_word[0];
    c3[g] = sched.stream_word[1];
  }
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int round = 0; round < 10; ++round) {
    for (int g = 0; g < G; ++g) {
      // c1 ^ key is ready before the product: only multiply, shift and one xor are on the chain.
      const __m256i x1 = _mm256_xor_si256(c1[g], sched.round_key[round][0]),
                    x3 = _mm256_xor_si256(c3[g], sched.round_key[round][1]);
      const __m256i p0 = _mm256_mul_epu32(c0[g], m0), p1 = _mm256_mul_epu32(c2[g], m1);
      c0[g] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1);
      c2[g] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3);
      c1[g] = p1;
      c3[g] = p0;
    }
  }
  // Lane l of (c0, c1, c2, c3) holds the four words of block l in its low halves: pair them up
  // (w0 w1 | w2 w3 per lane), then gather each block's four words into one 128-bit half.
  for (int g = 0; g < G; ++g) {
    const __m256i w01 = _mm256_blend_epi32(c0[g], _mm256_slli_epi64(c1[g], 32), 0xAA);
    const __m256i w23 = _mm256_blend_epi32(c2[g], _mm256_slli_epi64(c3[g], 32), 0xAA);
    const __m256i even = _mm256_unpacklo_epi64(w01, w23), odd = _mm256_unpackhi_epi64(w01, w23);
    std::uint32_t* o = out + 16 * g;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_permute2x128_si256(even, odd, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_permute2x128_si256(even, odd, 0x31));
  }
#else
  for (std::size_t b = 0; b < Blocks; ++b) {
    const std::uint64_t c = block + b;
    const auto words = Philox4x32::generate(
        {static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32),
         static_cast<std::uint32_t>(sched.stream), static_cast<std::uint32_t>(sched.stream >> 32)},
        sched.key);
    for (std::size_t j = 0; j < 4; ++j) out[4 * b + j] = words[j];
  }
#endif
}

// The same for a single call (tests, one-off use).
template <int Blocks = 8>
void philox_blocks(std::uint64_t block, std::uint64_t stream, Philox4x32::Key key,
                   std::uint32_t* out) noexcept {
  philox_blocks<Blocks>(block, PhiloxSchedule(stream, key), out);
}

}  // namespace p4lm::ops::detail
