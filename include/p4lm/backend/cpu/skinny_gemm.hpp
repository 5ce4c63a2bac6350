#pragma once
// out = x · Wᵀ (+ bias) for a few rows of x: the products of KV-cache decoding, where x is one row per
// sequence of the batch and W a weight matrix (M, K) stored row-major, as ops::matmul_forward takes it.
//
// Why not OpenBLAS: its SGEMM packs W on every call (the whole matrix, for one or sixteen rows), and its
// pthread workers hand off with the OpenMP team around each of the ~50 small products of a decoding step.
// Here each output is a dot product along K, W is streamed once per call straight from memory, and the
// rows of x (a few KB) stay in L1/L2. Several matrices that read the same x (Llama's wq/wk/wv, w1/w3)
// run in one OpenMP region, split by output rows across the team.
//
// Every output element is one SIMD dot product whose order of summation depends only on K: results do
// not depend on the batch size, on the row's place in the batch or on the thread count.

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <span>

#include <omp.h>
#include <xsimd/xsimd.hpp>

namespace p4lm::backend::cpu_blas {

// One product of a skinny_gemm_nt call: out (n, m) with row stride ldo = w (m, k)ᵀ applied to x, plus
// bias (m) when not null.
template <class T>
struct SkinnyProduct {
  const T* w;
  std::size_t m;
  T* out;
  std::size_t ldo;
  const T* bias = nullptr;
};

namespace detail {

// Weight rows per block: a block stays in L1 while every row of x passes over it, one load of x feeds
// `block` FMAs, and the block's sums are reduced together (xsimd::haddp) instead of one by one.
inline constexpr std::size_t block = 8;

// One row of x against J rows of w: J SIMD accumulators over K, then the reduction. The K tail
// (K % lanes) is added in scalar after the reduction. An output's arithmetic depends only on K and on
// whether its row of w sits in a full block (j / block < m / block), never on n or the thread split.
//
// Sequential = true walks the J rows of w one after the other (one memory stream), false walks them
// side by side (J streams, one load of x per J FMAs). Each accumulator sees the same FMAs in the same
// order either way, so both give bit-identical results. Sequential is for the first row of x, which
// pulls the block from memory: on the development VM (AMD EPYC, AVX2) J interleaved streams read DRAM
// ~1.3-1.5x slower than one; the other rows of x find the block in L1 and use the interleaved loop.
//
// `prefetch` (Sequential only, may be null): the next block of w, J rows of k; row j of it is requested
// (prefetcht0, one per cache line) before row j of this block is summed, so the next block is on its
// way while this one is read. Prefetches change no arithmetic.
template <std::size_t J, class T, bool Sequential = false>
inline void skinny_row(const T* x, const T* w, std::size_t k, T* out, const T* bias,
                       const T* prefetch = nullptr) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t L = Batch::size;
  Batch acc[J];
  const std::size_t kv = k / L * L;
  if constexpr (Sequential) {
    for (std::size_t j = 0; j < J; ++j) {
      Batch a(T(0));
      const T* wj = w + j * k;
      if (prefetch)
        for (std::size_t p = 0; p < k; p += 64 / sizeof(T)) __builtin_prefetch(prefetch + j * k + p, 0, 3);
      for (std::size_t p = 0; p < kv; p += L)
        a = xsimd::fma(Batch::load_unaligned(x + p), Batch::load_unaligned(wj + p), a);
      acc[j] = a;
    }
  } else {
    for (std::size_t j = 0; j < J; ++j) acc[j] = Batch(T(0));
    for (std::size_t p = 0; p < kv; p += L) {
      const Batch xv = Batch::load_unaligned(x + p);
      for (std::size_t j = 0; j < J; ++j)
        acc[j] = xsimd::fma(xv, Batch::load_unaligned(w + j * k + p), acc[j]);
    }
  }
  alignas(64) T sums[J];
  if constexpr (J % L == 0) {
    for (std::size_t g = 0; g < J; g += L) xsimd::haddp(acc + g).store_aligned(sums + g);
  } else {
    for (std::size_t j = 0; j < J; ++j) sums[j] = xsimd::hadd(acc[j]);
  }
  for (std::size_t j = 0; j < J; ++j) {
    T s = sums[j];
    for (std::size_t p = kv; p < k; ++p) s += x[p] * w[j * k + p];
    out[j] = bias ? s + bias[j] : s;
  }
}

// Blocks [b0, b1) of one product (block i = rows [8 i, 8 i + 8), the last one possibly short), every
// row of x.
template <class T>
void skinny_blocks(const T* x, std::size_t n, std::size_t ldx, std::size_t k, const SkinnyProduct<T>& p,
                   std::size_t b0, std::size_t b1) {
  const std::size_t full = p.m / block;  // blocks with all `block` rows
  for (std::size_t bi = b0; bi < b1; ++bi) {
    const std::size_t j0 = bi * block, rows = std::min(block, p.m - j0);
    const T* w = p.w + j0 * k;
    // The next full block of this thread's range, prefetched while the first row of x reads this one.
    const T* next = bi + 1 < b1 && bi + 1 < full ? w + block * k : nullptr;
    const T* bias = p.bias ? p.bias + j0 : nullptr;
    for (std::size_t r = 0; r < n; ++r) {
      const T* xr = x + r * ldx;
      T* o = p.out + r * p.ldo + j0;
      if (rows == block) {
        if (r == 0)
          skinny_row<block, T, true>(xr, w, k, o, bias, next);  // streams the block from memory
        else
          skinny_row<block>(xr, w, k, o, bias);  // the block is in L1 now
      } else {
        for (std::size_t j = 0; j < rows; ++j)
          skinny_row<1>(xr, w + j * k, k, o + j, bias ? bias + j : nullptr);
      }
    }
  }
}

}  // namespace detail

// For each product: out = x · wᵀ + bias, x (n, k) with row stride ldx. Blocks of 8 output rows of all
// products are split across the OpenMP team in contiguous ranges, so each thread streams its own part
// of the weights once; small totals run on the calling thread.
template <class T>
void skinny_gemm_nt(const T* x, std::size_t n, std::size_t ldx, std::size_t k,
                    std::span<const SkinnyProduct<T>> products) {
  std::size_t blocks = 0, work = 0;
  for (const auto& p : products) blocks += (p.m + detail::block - 1) / detail::block, work += p.m;
  if (n == 0 || blocks == 0) return;
  work *= n * k;
  auto run = [&](std::size_t begin, std::size_t end) {  // [begin, end) over the concatenated blocks
    std::size_t base = 0;
    for (const auto& p : products) {
      const std::size_t count = (p.m + detail::block - 1) / detail::block;
      const std::size_t b0 = std::max(begin, base), b1 = std::min(end, base + count);
      if (b0 < b1) detail::skinny_blocks(x, n, ldx, k, p, b0 - base, b1 - base);
      base += count;
    }
  };
  // Waking the team costs a few microseconds: worth it above ~64K multiply-adds.
  const bool parallel = work >= (std::size_t{1} << 16) && blocks >= 2 && omp_get_max_threads() > 1;
  if (!parallel) {
    run(0, blocks);
    return;
  }
#pragma omp parallel
  {
    const std::size_t threads = static_cast<std::size_t>(omp_get_num_threads()),
                      t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t per = (blocks + threads - 1) / threads;
    const std::size_t begin = std::min(blocks, t * per), end = std::min(blocks, begin + per);
    if (begin < end) run(begin, end);
  }
}

template <class T>
void skinny_gemm_nt(const T* x, std::size_t n, std::size_t ldx, std::size_t k,
                    std::initializer_list<SkinnyProduct<T>> products) {
  skinny_gemm_nt(x, n, ldx, k, std::span<const SkinnyProduct<T>>(products.begin(), products.size()));
}

}  // namespace p4lm::backend::cpu_blas
