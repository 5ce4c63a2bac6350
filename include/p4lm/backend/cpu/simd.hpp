#pragma once
// Fused multiply-add on xsimd batches, always with a single rounding.
//
// xsimd 8.1 implements fma and fnma for SSE/AVX with FMA3 but not for AVX-512: there its generic
// fallback computes x * y + z, which the compiler fuses only when it contracts (optimised builds with
// -ffp-contract=fast). A Debug build on an AVX-512 host therefore rounded twice, and exp_fast's
// Cody-Waite reduction lost 6 bits at x = 72 (tests/ops/test_fast_math.cpp). p4lm's SIMD code calls
// these instead of xsimd's.

#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace p4lm::backend::cpu_simd {

// x * y + z
template <class T, class A>
xsimd::batch<T, A> fma(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& y,
                       const xsimd::batch<T, A>& z) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>)
    return _mm512_fmadd_ps(x, y, z);
  else if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>)
    return _mm512_fmadd_pd(x, y, z);
  else
#endif
    return xsimd::fma(x, y, z);
}

// z - x * y
template <class T, class A>
xsimd::batch<T, A> fnma(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& y,
                        const xsimd::batch<T, A>& z) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>)
    return _mm512_fnmadd_ps(x, y, z);
  else if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>)
    return _mm512_fnmadd_pd(x, y, z);
  else
#endif
    return xsimd::fnma(x, y, z);
}

}  // namespace p4lm::backend::cpu_simd
