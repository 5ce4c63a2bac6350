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
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <vector>

#include <omp.h>
#include <xsimd/xsimd.hpp>

#include "p4lm/backend/cpu/simd.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace p4lm::backend::cpu_blas {

// One product of a skinny_gemm_nt call: out (n, m) with row stride ldo = w (m, k)ᵀ applied to x, plus
// bias (m) when not null. w's rows are ldw apart (0: k, a dense matrix; attention's keys are rows of
// the KV cache, one head's slice of each).
template <class T>
struct SkinnyProduct {
  const T* w;
  std::size_t m;
  T* out;
  std::size_t ldo;
  const T* bias = nullptr;
  std::size_t ldw = 0;
};

namespace detail {

// Weight rows per block: a block stays in L1 while every row of x passes over it, and with AVX2 (8
// lanes) its sums are reduced together (xsimd::haddp) instead of one by one.
inline constexpr std::size_t block = 8;

#if defined(__AVX512F__)
// Float sums of 16 lanes, in one fixed order: t = low 8 + high 8 lanes, u = low 4 + high 4 of t,
// then (u0 + u1) + (u2 + u3). reduce_8 gives eight of them with a transpose (a third of the
// instructions of eight reduce_1), lane for lane in the same order, so a row's sum does not depend on
// which of the two computed it.
inline __m256 fold_to_8(__m512 a) noexcept {
  return _mm256_add_ps(_mm512_castps512_ps256(a),
                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
inline float reduce_1(__m512 a) noexcept {
  const __m256 t = fold_to_8(a);
  const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  const __m128 h = _mm_hadd_ps(u, u);
  return _mm_cvtss_f32(_mm_hadd_ps(h, h));
}
inline void reduce_8(const __m512* a, float* out) noexcept {
  __m256 t[8], x[4];
  for (int i = 0; i < 8; ++i) t[i] = fold_to_8(a[i]);
  for (int i = 0; i < 4; ++i)  // [u(t_i) | u(t_i+4)]
    x[i] = _mm256_add_ps(_mm256_permute2f128_ps(t[i], t[i + 4], 0x20),
                         _mm256_permute2f128_ps(t[i], t[i + 4], 0x31));
  _mm256_storeu_ps(out, _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3])));
}
#endif

// The sums of J SIMD accumulators: xsimd::haddp on groups of `lanes` accumulators when J is a
// multiple of it, the fixed-order reductions above for AVX-512 floats, xsimd::hadd otherwise.
template <std::size_t J, class T>
inline void reduce_sums(const xsimd::batch<T>* acc, T* sums) {
  constexpr std::size_t L = xsimd::batch<T>::size;
  if constexpr (J % L == 0) {
    for (std::size_t g = 0; g < J; g += L) xsimd::haddp(acc + g).store_aligned(sums + g);
#if defined(__AVX512F__)
  } else if constexpr (std::is_same_v<T, float> && L == 16) {
    std::size_t j = 0;
    if constexpr (J >= 8) {
      __m512 regs[8];
      for (; j + 8 <= J; j += 8) {
        for (std::size_t i = 0; i < 8; ++i) regs[i] = acc[j + i];
        reduce_8(regs, sums + j);
      }
    }
    for (; j < J; ++j) sums[j] = reduce_1(acc[j]);
#endif
  } else {
    for (std::size_t j = 0; j < J; ++j) sums[j] = xsimd::hadd(acc[j]);
  }
}

// The end of one row of x against J rows of w, given their J SIMD accumulators over the first kv =
// K / lanes · lanes columns: the reduction (reduce_sums), then the K tail in scalar, then the bias.
// Every kernel below ends here, so an output's arithmetic depends only on K and on whether its row of
// w sits in a full block (j / block < m / block), never on n, on the kernel or on the thread split.
template <std::size_t J, class T>
inline void finish_row(const xsimd::batch<T>* acc, const T* x, const T* w, std::size_t k, std::size_t ldw,
                       std::size_t kv, T* out, const T* bias) {
  alignas(64) T sums[J];
  reduce_sums<J>(acc, sums);
  for (std::size_t j = 0; j < J; ++j) {
    T s = sums[j];
    for (std::size_t p = kv; p < k; ++p) s += x[p] * w[j * ldw + p];
    out[j] = bias ? s + bias[j] : s;
  }
}

// One row of x against J rows of w, walking the J rows one after the other (one memory stream): for
// the first row of x, which pulls the block from memory. On AMD EPYC (Zen 2-4) J interleaved streams
// read DRAM 1.3-2x slower than one.
template <std::size_t J, class T>
inline void skinny_row_streaming(const T* x, const T* w, std::size_t k, std::size_t ldw, T* out,
                                 const T* bias) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t L = Batch::size;
  Batch acc[J];
  const std::size_t kv = k / L * L;
  for (std::size_t j = 0; j < J; ++j) {
    Batch a(T(0));
    const T* wj = w + j * ldw;
    for (std::size_t p = 0; p < kv; p += L)
      a = cpu_simd::fma(Batch::load_unaligned(x + p), Batch::load_unaligned(wj + p), a);
    if constexpr (J % L == 0) {
      acc[j] = a;
    } else {  // finish_row's per-row reduction, done while the next row streams in (~8% faster, Zen 4)
      finish_row<1>(&a, x, wj, k, ldw, kv, out + j, bias ? bias + j : nullptr);
    }
  }
  if constexpr (J % L == 0) finish_row<J>(acc, x, w, k, ldw, kv, out, bias);
}

// Accumulators kept in registers by skinny_rows: a tile of R rows of x by S rows of w needs R · S of
// them plus R for x and one for w. 32 vector registers (AVX-512, NEON) hold 3 x 8, 16 (AVX2) 3 x 4.
#if defined(__AVX512F__) || defined(__aarch64__)
inline constexpr std::size_t tile_rows_of_w = 8;
#else
inline constexpr std::size_t tile_rows_of_w = 4;
#endif
inline constexpr std::size_t tile_rows_of_x = 3;

// While the tiles of a batch compute on one block, the block `prefetch_ahead` places further along is
// requested into L2 (into L1 it would push out rows of x), `prefetch_per_step` cache lines per step of
// the tiles' loop: spread through the FMAs, memory works while they run (a burst of all 144 lines at
// once, one block ahead, gained less: 15M, batch 16, 1 thread, ~1350 against ~1490 tokens/s).
inline constexpr std::size_t prefetch_ahead = 2, prefetch_per_step = 2;

// Loads w's vector into a register once for its R FMAs: without this GCC folds the load into each FMA
// (R loads of the same vector), and the tile is bound by loads instead of FMAs.
template <class Batch>
inline void keep_in_register(Batch& v) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
  auto r = static_cast<typename Batch::register_type>(v);
#if defined(__x86_64__)
  asm("" : "+v"(r));  // any vector register
#else
  asm("" : "+w"(r));
#endif
  v = Batch(r);
#endif
}

// Cache lines of w still to request, handed out to the tiles of a block in slices.
struct PrefetchLines {
  const char* next = nullptr;
  std::size_t count = 0;
  void issue_one() noexcept {
    if (count == 0) return;
    __builtin_prefetch(next, 0, 2);
    next += 64;
    --count;
  }
};

// R rows of x (row stride ldx) against J rows of w that are already in L1 (the first row of x brought
// them): register tiles of R x S, so each load of w feeds R FMAs and each load of x S of them, where
// one row at a time needs a load of w per FMA. Each accumulator still sees the FMAs of its own dot
// product in order from column 0, as skinny_row_streaming's do: the results are bit-identical.
template <std::size_t R, std::size_t J, class T>
inline void skinny_rows(const T* x, std::size_t ldx, const T* w, std::size_t k, std::size_t ldw, T* out,
                        std::size_t ldo, const T* bias, PrefetchLines prefetch = {}) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t L = Batch::size, S = std::min(J, tile_rows_of_w);
  static_assert(J % S == 0);
  const std::size_t kv = k / L * L;
  Batch acc[R][J];
  for (std::size_t j0 = 0; j0 < J; j0 += S) {
    Batch a[R][S];
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t s = 0; s < S; ++s) a[r][s] = Batch(T(0));
    for (std::size_t p = 0; p < kv; p += L) {
      Batch xv[R];
      for (std::size_t r = 0; r < R; ++r) xv[r] = Batch::load_unaligned(x + r * ldx + p);
      for (std::size_t q = 0; q < prefetch_per_step; ++q) prefetch.issue_one();
      for (std::size_t s = 0; s < S; ++s) {
        Batch wv = Batch::load_unaligned(w + (j0 + s) * ldw + p);
        keep_in_register(wv);
        for (std::size_t r = 0; r < R; ++r) a[r][s] = cpu_simd::fma(xv[r], wv, a[r][s]);
      }
    }
    for (std::size_t r = 0; r < R; ++r)
      for (std::size_t s = 0; s < S; ++s) acc[r][j0 + s] = a[r][s];
  }
  for (std::size_t r = 0; r < R; ++r) finish_row<J>(acc[r], x + r * ldx, w, k, ldw, kv, out + r * ldo, bias);
}

// Blocks [b0, b1) of one product (block i = rows [8 i, 8 i + 8), the last one possibly short), every
// row of x.
template <class T>
void skinny_blocks(const T* x, std::size_t n, std::size_t ldx, std::size_t k, const SkinnyProduct<T>& p,
                   std::size_t b0, std::size_t b1, std::size_t prefetch_end) {
  const std::size_t full = p.m / block;  // blocks with all `block` rows
  const std::size_t ldw = p.ldw ? p.ldw : k;
  for (std::size_t bi = b0; bi < b1; ++bi) {
    const std::size_t j0 = bi * block, rows = std::min(block, p.m - j0);
    const T* w = p.w + j0 * ldw;
    const T* bias = p.bias ? p.bias + j0 : nullptr;
    T* o = p.out + j0;
    if (rows < block) {  // the last, short block: one row of w at a time
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < rows; ++j)
          skinny_row_streaming<1>(x + r * ldx, w + j * ldw, k, ldw, o + r * p.ldo + j,
                                  bias ? bias + j : nullptr);
      continue;
    }
    skinny_row_streaming<block>(x, w, k, ldw, o, bias);  // streams the block from memory
    if (n == 1) continue;
    // The other rows find the block in L1 and are bound by their FMAs, while memory would idle until
    // the next block's first row: they request a block further along, a slice of it per tile. With one
    // row there is nothing to overlap, and on Zen 4 prefetching beside the stream made it slower
    // (1 thread, 15M model: ~290 against ~430 tokens/s).
    const std::size_t ahead = bi + prefetch_ahead;
    const bool dense = ldw == k;  // a strided block is not one run of lines: no prefetch
    const std::size_t lines = dense && ahead < prefetch_end && ahead < full ? block * k * sizeof(T) / 64 : 0;
    const std::size_t tiles = (n - 1 + tile_rows_of_x - 1) / tile_rows_of_x,
                      per_tile = (lines + tiles - 1) / tiles;
    PrefetchLines rest{lines ? reinterpret_cast<const char*>(w + prefetch_ahead * block * k) : nullptr,
                       lines};
    auto slice = [&] {
      const PrefetchLines part{rest.next, std::min(per_tile, rest.count)};
      rest.next += 64 * part.count;
      rest.count -= part.count;
      return part;
    };
    std::size_t r = 1;  // the block is in L1 now
    for (; r + tile_rows_of_x <= n; r += tile_rows_of_x)
      skinny_rows<tile_rows_of_x, block>(x + r * ldx, ldx, w, k, ldw, o + r * p.ldo, p.ldo, bias, slice());
    for (; r + 2 <= n; r += 2)
      skinny_rows<2, block>(x + r * ldx, ldx, w, k, ldw, o + r * p.ldo, p.ldo, bias, slice());
    if (r < n) skinny_rows<1, block>(x + r * ldx, ldx, w, k, ldw, o + r * p.ldo, p.ldo, bias, slice());
  }
}

// The blocks one thread owns: a contiguous range that the owner takes from the front, a chunk at a
// time, and that a thread done with its own range takes from the back, one block at a time. Front and
// back share one atomic word, so each block is taken exactly once.
class alignas(64) BlockRange {
 public:
  void reset(std::size_t begin, std::size_t end) noexcept {
    bounds_.store(pack(begin, end), std::memory_order_relaxed);
  }
  // [first, first + count) taken from the front, count <= want; false when the range is empty.
  bool take_front(std::size_t want, std::size_t& first, std::size_t& count) noexcept {
    std::uint64_t cur = bounds_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t f = front(cur), b = back(cur);
      if (f >= b) return false;
      const std::size_t c = std::min(want, b - f);
      if (bounds_.compare_exchange_weak(cur, pack(f + c, b), std::memory_order_relaxed)) {
        first = f, count = c;
        return true;
      }
    }
  }
  bool take_back(std::size_t& block) noexcept {
    std::uint64_t cur = bounds_.load(std::memory_order_relaxed);
    for (;;) {
      const std::size_t f = front(cur), b = back(cur);
      if (f >= b) return false;
      if (bounds_.compare_exchange_weak(cur, pack(f, b - 1), std::memory_order_relaxed)) {
        block = b - 1;
        return true;
      }
    }
  }

 private:
  static std::uint64_t pack(std::size_t f, std::size_t b) noexcept {
    return static_cast<std::uint64_t>(f) | static_cast<std::uint64_t>(b) << 32;
  }
  static std::size_t front(std::uint64_t v) noexcept { return static_cast<std::size_t>(v & 0xffffffffu); }
  static std::size_t back(std::uint64_t v) noexcept { return static_cast<std::size_t>(v >> 32); }
  std::atomic<std::uint64_t> bounds_{0};
};

// Blocks an owner takes at once: about 32 KB of w, so the atomic is touched rarely.
inline std::size_t owner_chunk(std::size_t k, std::size_t elem) noexcept {
  return std::max<std::size_t>(1, (32 * 1024) / (block * k * elem));
}

}  // namespace detail

// For each product: out = x · wᵀ + bias, x (n, k) with row stride ldx. The blocks of 8 output rows of
// all products are split across the OpenMP team in contiguous ranges, so each thread streams its own
// part of the weights; a thread that finishes early takes blocks from the back of another's range (the
// halves of a memory-bound product rarely finish together: without this each thread of a 2-thread
// decoding step waited at the barriers for 13-16% of the step). Who computes a block does not change
// its arithmetic. Small totals run on the calling thread.
template <class T>
void skinny_gemm_nt(const T* x, std::size_t n, std::size_t ldx, std::size_t k,
                    std::span<const SkinnyProduct<T>> products) {
  std::size_t blocks = 0, work = 0;
  for (const auto& p : products) blocks += (p.m + detail::block - 1) / detail::block, work += p.m;
  if (n == 0 || blocks == 0) return;
  work *= n * k;
  // Blocks [begin, end) of the concatenated products; blocks before prefetch_end may be prefetched.
  auto run = [&](std::size_t begin, std::size_t end, std::size_t prefetch_end) {
    std::size_t base = 0;
    for (const auto& p : products) {
      const std::size_t count = (p.m + detail::block - 1) / detail::block;
      const std::size_t b0 = std::max(begin, base), b1 = std::min(end, base + count);
      if (b0 < b1)
        detail::skinny_blocks(x, n, ldx, k, p, b0 - base, b1 - base,
                              std::min(prefetch_end, base + count) - base);
      base += count;
    }
  };
  // Waking the team costs a few microseconds: worth it above ~64K multiply-adds.
  // Inside a parallel region (attention's items) the product stays on its thread.
  const bool parallel =
      work >= (std::size_t{1} << 16) && blocks >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel();
  if (!parallel) {
    run(0, blocks, blocks);
    return;
  }
  const std::size_t team = static_cast<std::size_t>(omp_get_max_threads());
  thread_local std::vector<detail::BlockRange> per_caller;  // one set per calling thread
  if (per_caller.size() < team) per_caller = std::vector<detail::BlockRange>(team);
  std::vector<detail::BlockRange>& ranges = per_caller;  // the caller's, shared with the team
  const std::size_t chunk = detail::owner_chunk(k, sizeof(T)), per = (blocks + team - 1) / team;
  for (std::size_t t = 0; t < team; ++t)  // before the fork, which orders these writes for the team
    ranges[t].reset(std::min(blocks, t * per), std::min(blocks, t * per + per));
#pragma omp parallel
  {
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    if (t < team) {
      const std::size_t end = std::min(blocks, t * per + per);
      std::size_t first = 0, count = 0;
      while (ranges[t].take_front(chunk, first, count)) run(first, first + count, end);
    }
    for (std::size_t step = 1; step < team; ++step) {  // then the others' ranges, from the back
      detail::BlockRange& other = ranges[(t + step) % team];
      std::size_t b = 0;
      while (other.take_back(b)) run(b, b + 1, b + 1);
    }
  }
}

template <class T>
void skinny_gemm_nt(const T* x, std::size_t n, std::size_t ldx, std::size_t k,
                    std::initializer_list<SkinnyProduct<T>> products) {
  skinny_gemm_nt(x, n, ldx, k, std::span<const SkinnyProduct<T>>(products.begin(), products.size()));
}

}  // namespace p4lm::backend::cpu_blas
