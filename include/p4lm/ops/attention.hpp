#pragma once
// Scaled dot-product attention, forward and backward, on the CPU.
//
// Layouts (row-major):
//   q (B, Tq, H, D), k and v (B, Tk, Hkv, D), out (B, Tq, H, D), probs (B, H, Tq, Tk) —
//   the (B, T, heads, D) layout is what a (B*T, C) x (C, heads*D) projection writes, so no transpose
//   is needed on either side. The fused entry points take qkv (B, T, (H + 2 Hkv) D) with each token's
//   row laid out [q heads | k heads | v heads] (llm.c's and GPT-2's c_attn layout).
// Grouped-query attention: Hkv divides H; query head h reads kv head h / (H / Hkv) (Llama's
// repeat_kv order). D is any size (8 included).
//
// Masking: key j is visible to query i iff
//   (!causal || j <= i + query_offset) && j < key_lengths[b] && key_mask[b, j] != 0
// with query_offset = Tk - Tq unless given (bottom-right aligned: a decode step with Tq = 1 sees all
// of the cache). key_lengths (right padding, KV-cache fill levels) and key_mask (left padding, holes)
// are optional. Soft-token prefixes are ordinary positions at the start of the sequence. A query that
// sees no key (a left-padding position) gets zero probabilities and a zero output, never NaN, and
// passes no gradient.
//
// Work: one item per (batch, head) in the forward pass and per (batch, kv head) in the backward pass
// (so the kv-gradient sums of a GQA group never race), spread over OpenMP threads; inside an item
// QK^T, PV and the four backward products are BLAS GEMMs (one thread each, OpenBLAS's own threading
// is suspended meanwhile), or plain loops when tiny. Causal items run in blocks of 64 queries whose
// products stop at the block's last visible key, which halves the work at large T. Scratch (dP of a block)
// is a per-thread buffer that grows to the largest shape seen and is then reused: steps do not allocate. The
// softmax backward is the O(T^2) row form dS = P * (dP - rowsum(P * dP)), not llm.c's O(T^3) Jacobian loop.
// Columns past the last visible key of an item are skipped in every product.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <omp.h>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/backend/cpu/skinny_gemm.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/row_softmax.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

template <Backend B = backend::cpu>
struct AttentionOptions {
  bool causal = true;
  double scale = 0;                           // softmax(scale * q.k); 0 means 1/sqrt(D)
  std::ptrdiff_t query_offset = -1;           // causal: query i sees keys j <= i + query_offset; -1: Tk - Tq
  TensorView<B, std::int32_t> key_lengths{};  // (B): keys j >= key_lengths[b] are masked; optional
  TensorView<B, std::uint8_t> key_mask{};     // (B, Tk): keys with 0 are masked; optional
  // Tuning (CPU): a product with fewer multiply-adds than blas_min_work runs as plain loops (BLAS
  // packing does not pay off); a call with less work (B H Tq Tk D) than parallel_min_work stays on
  // one thread. 0 forces BLAS / OpenMP (the tests do, to check both paths on small shapes). 8192 splits
  // the heads of one decoded token from ~30 cached keys on (Llama 15M); at 65536, 2-thread decoding
  // left one thread idle through every attention call (15M, 1 sequence: 0.94 -> 0.99x run.c).
  std::size_t blas_min_work = 32768;
  std::size_t parallel_min_work = 8192;
  std::size_t causal_row_block = 64;  // causal: queries per block (blocks skip keys they cannot see)
};

namespace detail {

// (b, t, head, d) lives at p + b * batch_stride + t * ld + head * D + d.
template <class T>
struct HeadsView {
  T* p;
  std::size_t ld;
  std::size_t batch_stride;
};

using check::AttentionDims;

using backend::cpu_blas::BlasSingleThreaded;

// Row-major C = alpha op(A) op(B) + beta C (beta == 0: C is not read). BLAS above ~32^3 multiply-adds,
// where its packing pays for itself; loops below.
template <class T>
void attn_gemm(std::size_t blas_min_work, bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k,
               T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
               std::size_t ldc) {
  if (m == 0 || n == 0) return;
  if (m * n * k >= blas_min_work && k > 0) {  // sizes were range-checked by check_blas_range
    backend::cpu_blas::gemm(ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                            static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
    return;
  }
  // Loops, vectorised along a contiguous index: dot products when both rows run along k (QKᵀ, dO Vᵀ),
  // row updates c_i += a_ip b_p along n otherwise (PV, the backward products; KV-cache decoding lives
  // here). Sums gather in `row`, then c = alpha row + beta c as BLAS would. The dot products are
  // skinny_gemm_nt's, 8 keys at a time with one vector reduction each: one key at a time, a decoding
  // step's QKᵀ (one query, 48 dims) spent most of its time adding the 16 lanes of each sum in scalar
  // (15M model, batch 16: attention 12% of the step).
  if (!ta && tb && beta == T(0)) {
    backend::cpu_blas::skinny_gemm_nt<T>(a, m, lda, k, {{b, n, c, ldc, nullptr, ldb}});
    if (alpha != T(1))
      for (std::size_t i = 0; i < m; ++i) {
        T* ci = c + i * ldc;
#pragma omp simd
        for (std::size_t j = 0; j < n; ++j) ci[j] *= alpha;
      }
    return;
  }
  if (!tb) {
    static thread_local std::vector<T> row;
    row.resize(n);
    T* acc = row.data();
    for (std::size_t i = 0; i < m; ++i) {
      std::fill(acc, acc + n, T(0));
      for (std::size_t p = 0; p < k; ++p) {
        const T av = ta ? a[p * lda + i] : a[i * lda + p];
        const T* bp = b + p * ldb;
#pragma omp simd
        for (std::size_t j = 0; j < n; ++j) acc[j] += av * bp[j];
      }
      T* ci = c + i * ldc;
      if (beta == T(0)) {
#pragma omp simd
        for (std::size_t j = 0; j < n; ++j) ci[j] = alpha * acc[j];
      } else {
#pragma omp simd
        for (std::size_t j = 0; j < n; ++j) ci[j] = alpha * acc[j] + beta * ci[j];
      }
    }
    return;
  }
  // The rest (no caller today: every tb product overwrites c and reads a untransposed), in scalar.
  for (std::size_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (std::size_t j = 0; j < n; ++j) {
      T sum = 0;
      for (std::size_t p = 0; p < k; ++p) sum += (ta ? a[p * lda + i] : a[i * lda + p]) * b[j * ldb + p];
      ci[j] = beta == T(0) ? alpha * sum : alpha * sum + beta * ci[j];
    }
  }
}

// First key index past every visible key of query i (keys >= this bound are masked).
inline std::size_t visible_end(std::size_t i, std::size_t kv_len, bool causal, std::ptrdiff_t offset) {
  if (!causal) return kv_len;
  const std::ptrdiff_t last = static_cast<std::ptrdiff_t>(i) + offset;  // last visible key
  if (last < 0) return 0;
  return std::min(kv_len, static_cast<std::size_t>(last) + 1);
}

template <class T>
struct AttentionPlan {
  bool causal;
  std::ptrdiff_t offset;
  const std::int32_t* lengths;  // null: all Tk
  const std::uint8_t* mask;     // null: none
  std::size_t blas_min_work;
  std::size_t parallel_min_work;
  std::size_t row_block;  // queries per block: causal blocks skip the keys no query of theirs sees
  std::size_t kv_len(std::size_t b, std::size_t tk) const {
    if (!lengths) return tk;
    const std::int32_t len = lengths[b];
    return len <= 0 ? 0 : std::min(tk, static_cast<std::size_t>(len));
  }
};

template <class T>
void attention_forward_impl(HeadsView<T> out, T* probs, HeadsView<const T> q, HeadsView<const T> k,
                            HeadsView<const T> v, const AttentionDims& n, const AttentionPlan<T>& plan,
                            T scale) {
  const std::size_t group = n.h / n.hkv;
  const auto items = static_cast<std::ptrdiff_t>(n.b * n.h);
  const bool parallel =
      items > 1 && n.b * n.h * n.tq * n.tk * n.d >= plan.parallel_min_work && omp_get_max_threads() > 1;
  // No product of an item exceeds Tq x Tk x D: below blas_min_work BLAS is never called, and its
  // thread count is left alone (setting it wakes OpenBLAS's workers, which then spin beside the team).
  BlasSingleThreaded blas_guard(parallel && n.tq * n.tk * n.d >= plan.blas_min_work);
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (std::ptrdiff_t item = 0; item < items; ++item) {
    const std::size_t b = static_cast<std::size_t>(item) / n.h, h = static_cast<std::size_t>(item) % n.h;
    const std::size_t g = h / group;
    const T* qh = q.p + b * q.batch_stride + h * n.d;
    const T* kg = k.p + b * k.batch_stride + g * n.d;
    const T* vg = v.p + b * v.batch_stride + g * n.d;
    T* oh = out.p + b * out.batch_stride + h * n.d;
    T* pb = probs + static_cast<std::size_t>(item) * n.tq * n.tk;
    const std::size_t kv_len = plan.kv_len(b, n.tk);
    const std::uint8_t* key_ok = plan.mask ? plan.mask + b * n.tk : nullptr;
    for (std::size_t i0 = 0; i0 < n.tq; i0 += plan.row_block) {
      const std::size_t i1 = std::min(n.tq, i0 + plan.row_block);
      // Scores only for the columns some query of the block can see; the rest of P is zero.
      const std::size_t cols = visible_end(i1 - 1, kv_len, plan.causal, plan.offset);
      T* pblk = pb + i0 * n.tk;
      attn_gemm<T>(plan.blas_min_work, false, true, i1 - i0, cols, n.d, scale, qh + i0 * q.ld, q.ld, kg, k.ld,
                   T(0), pblk, n.tk);
      for (std::size_t i = i0; i < i1; ++i) {
        T* row = pb + i * n.tk;
        const std::size_t end = visible_end(i, kv_len, plan.causal, plan.offset);
        constexpr T neg_inf = -std::numeric_limits<T>::infinity();
        if (key_ok)
          for (std::size_t j = 0; j < end; ++j)
            if (!key_ok[j]) row[j] = neg_inf;
        const T mx = row_max(row, end);
        if (mx == neg_inf) {  // no visible key
          std::fill(row, row + n.tk, T(0));
          continue;
        }
        const T inv = T(1) / row_sum_exp(row, end, mx, row);
#pragma omp simd
        for (std::size_t j = 0; j < end; ++j) row[j] *= inv;
        std::fill(row + end, row + n.tk, T(0));
      }
      T* oblk = oh + i0 * out.ld;
      if (cols == 0) {
        for (std::size_t i = 0; i < i1 - i0; ++i) std::fill(oblk + i * out.ld, oblk + i * out.ld + n.d, T(0));
      } else {
        attn_gemm<T>(plan.blas_min_work, false, false, i1 - i0, n.d, cols, T(1), pblk, n.tk, vg, v.ld, T(0),
                     oblk, out.ld);
      }
    }
  }
}

template <class T>
void attention_backward_impl(HeadsView<T> dq, HeadsView<T> dk, HeadsView<T> dv, HeadsView<const T> dout,
                             const T* probs, HeadsView<const T> q, HeadsView<const T> k, HeadsView<const T> v,
                             const AttentionDims& n, const AttentionPlan<T>& plan, T scale) {
  const std::size_t group = n.h / n.hkv;
  const auto items = static_cast<std::ptrdiff_t>(n.b * n.hkv);
  const bool parallel =
      items > 1 && n.b * n.h * n.tq * n.tk * n.d >= plan.parallel_min_work && omp_get_max_threads() > 1;
  // No product of an item exceeds Tq x Tk x D: below blas_min_work BLAS is never called, and its
  // thread count is left alone (setting it wakes OpenBLAS's workers, which then spin beside the team).
  BlasSingleThreaded blas_guard(parallel && n.tq * n.tk * n.d >= plan.blas_min_work);
#pragma omp parallel if (parallel)
  {
    static thread_local std::vector<T> scratch;  // dP, then dS, of one row block; grows, reused
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t item = 0; item < items; ++item) {
      const std::size_t b = static_cast<std::size_t>(item) / n.hkv,
                        g = static_cast<std::size_t>(item) % n.hkv;
      const std::size_t kv_len = plan.kv_len(b, n.tk);
      const T* kg = k.p + b * k.batch_stride + g * n.d;
      const T* vg = v.p + b * v.batch_stride + g * n.d;
      T* dkg = dk.p + b * dk.batch_stride + g * n.d;
      T* dvg = dv.p + b * dv.batch_stride + g * n.d;
      for (std::size_t h = g * group; h < (g + 1) * group; ++h) {
        const T* qh = q.p + b * q.batch_stride + h * n.d;
        const T* doh = dout.p + b * dout.batch_stride + h * n.d;
        T* dqh = dq.p + b * dq.batch_stride + h * n.d;
        const T* pb = probs + (b * n.h + h) * n.tq * n.tk;
        for (std::size_t i0 = 0; i0 < n.tq; i0 += plan.row_block) {
          const std::size_t i1 = std::min(n.tq, i0 + plan.row_block), rows = i1 - i0;
          const std::size_t cols = visible_end(i1 - 1, kv_len, plan.causal, plan.offset);
          if (cols == 0) continue;
          scratch.resize(rows * cols);
          T* ds = scratch.data();
          const T* pblk = pb + i0 * n.tk;
          const T* doblk = doh + i0 * dout.ld;
          // dV += P^T dO;  dP = dO V^T
          attn_gemm<T>(plan.blas_min_work, true, false, cols, n.d, rows, T(1), pblk, n.tk, doblk, dout.ld,
                       T(1), dvg, dv.ld);
          attn_gemm<T>(plan.blas_min_work, false, true, rows, cols, n.d, T(1), doblk, dout.ld, vg, v.ld, T(0),
                       ds, cols);
          // dS = P * (dP - sum_j P dP): the softmax Jacobian applied row by row in O(cols).
          for (std::size_t i = 0; i < rows; ++i) {
            const T* pr = pblk + i * n.tk;
            T* dr = ds + i * cols;
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (std::size_t j = 0; j < cols; ++j) dot += pr[j] * dr[j];
#pragma omp simd
            for (std::size_t j = 0; j < cols; ++j) dr[j] = pr[j] * (dr[j] - dot);
          }
          // dQ += scale dS K;  dK += scale dS^T Q
          attn_gemm<T>(plan.blas_min_work, false, false, rows, n.d, cols, scale, ds, cols, kg, k.ld, T(1),
                       dqh + i0 * dq.ld, dq.ld);
          attn_gemm<T>(plan.blas_min_work, true, false, cols, n.d, rows, scale, ds, cols, qh + i0 * q.ld,
                       q.ld, T(1), dkg, dk.ld);
        }
      }
    }
  }
}

template <class T>
AttentionPlan<T> make_plan(const AttentionOptions<backend::cpu>& opt, std::size_t tq, std::size_t tk) {
  // Causal: blocks of causal_row_block queries, so a block's products stop at its last visible key
  // (about half the work of the full square at large T). Otherwise all queries see the same keys.
  const std::size_t row_block =
      opt.causal ? std::max<std::size_t>(opt.causal_row_block, 1) : std::max<std::size_t>(tq, 1);
  AttentionPlan<T> m{opt.causal,        opt.query_offset,      nullptr,  nullptr,
                     opt.blas_min_work, opt.parallel_min_work, row_block};
  if (opt.query_offset < 0) m.offset = static_cast<std::ptrdiff_t>(tk) - static_cast<std::ptrdiff_t>(tq);
  // Shapes checked by check::attention_keys.
  if (is_given(opt.key_lengths)) m.lengths = opt.key_lengths.data();
  if (is_given(opt.key_mask)) m.mask = opt.key_mask.data();
  return m;
}

// Every GEMM dimension and leading dimension is at most Tq, Tk or (H + 2 Hkv) D.
inline void check_blas_range(const char* op, const AttentionDims& n) {
  backend::cpu_blas::blas_int(std::max({n.tq, n.tk, (n.h + 2 * n.hkv) * n.d}), op);
}

template <class T>
HeadsView<T> heads_out(CpuView<T> t) {  // (B, T, heads, D) contiguous
  return {t.data(), t.dim(2) * t.dim(3), t.dim(1) * t.dim(2) * t.dim(3)};
}
template <class T>
HeadsView<const T> heads_in(const CpuView<T>& t) {
  return {t.data(), t.dim(2) * t.dim(3), t.dim(1) * t.dim(2) * t.dim(3)};
}

template <class T>
T default_scale(double scale, std::size_t d) {
  return static_cast<T>(scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(d)));
}

}  // namespace detail

// q (B, Tq, H, D), k (B, Tk, Hkv, D), v (B, Tk, Hkv, D) -> out (B, Tq, H, D);
// probs (B, H, Tq, Tk): the attention probabilities, cached for attention_backward.
template <Scalar T>
void attention_forward(CpuView<T> out, CpuView<T> probs, const CpuView<T>& q, const CpuView<T>& k,
                       const CpuView<T>& v, const AttentionOptions<backend::cpu>& options = {}) {
  const auto n = check::attention_forward(out, probs, q, k, v, options);
  detail::check_blas_range("attention_forward", n);
  const auto plan = detail::make_plan<T>(options, n.tq, n.tk);
  detail::attention_forward_impl<T>(detail::heads_out(out), probs.data(), detail::heads_in(q),
                                    detail::heads_in(k), detail::heads_in(v), n, plan,
                                    detail::default_scale<T>(options.scale, n.d));
}

// Accumulates dq (B, Tq, H, D), dk (B, Tk, Hkv, D), dv (B, Tk, Hkv, D) from dout (B, Tq, H, D), given the
// forward inputs and probs. Options must equal the forward pass's.
template <Scalar T>
void attention_backward(CpuView<T> dq, CpuView<T> dk, CpuView<T> dv, const CpuView<T>& dout,
                        const CpuView<T>& q, const CpuView<T>& k, const CpuView<T>& v,
                        const CpuView<T>& probs, const AttentionOptions<backend::cpu>& options = {}) {
  const auto n = check::attention_backward(dq, dk, dv, dout, q, k, v, probs, options);
  detail::check_blas_range("attention_backward", n);
  const auto plan = detail::make_plan<T>(options, n.tq, n.tk);
  detail::attention_backward_impl<T>(detail::heads_out(dq), detail::heads_out(dk), detail::heads_out(dv),
                                     detail::heads_in(dout), probs.data(), detail::heads_in(q),
                                     detail::heads_in(k), detail::heads_in(v), n, plan,
                                     detail::default_scale<T>(options.scale, n.d));
}

// Fused: qkv (B, T, (H + 2 Hkv) D), each token [q heads | k heads | v heads] -> out (B, T, H, D);
// probs (B, H, T, T). H and D are read from out.
template <Scalar T>
void attention_forward_qkv(CpuView<T> out, CpuView<T> probs, const CpuView<T>& qkv, std::size_t n_kv_heads,
                           const AttentionOptions<backend::cpu>& options = {}) {
  const auto n = check::attention_forward_qkv(out, probs, qkv, n_kv_heads, options);
  detail::check_blas_range("attention_forward_qkv", n);
  const auto plan = detail::make_plan<T>(options, n.tq, n.tk);
  const std::size_t ld = (n.h + 2 * n.hkv) * n.d, bs = n.tq * ld;
  const T* p = qkv.data();
  detail::attention_forward_impl<T>(detail::heads_out(out), probs.data(), {p, ld, bs},
                                    {p + n.h * n.d, ld, bs}, {p + (n.h + n.hkv) * n.d, ld, bs}, n, plan,
                                    detail::default_scale<T>(options.scale, n.d));
}

// Fused backward: accumulates dqkv (B, T, (H + 2 Hkv) D) from dout (B, T, H, D).
template <Scalar T>
void attention_backward_qkv(CpuView<T> dqkv, const CpuView<T>& dout, const CpuView<T>& qkv,
                            const CpuView<T>& probs, std::size_t n_kv_heads,
                            const AttentionOptions<backend::cpu>& options = {}) {
  const auto n = check::attention_backward_qkv(dqkv, dout, qkv, probs, n_kv_heads, options);
  detail::check_blas_range("attention_backward_qkv", n);
  const auto plan = detail::make_plan<T>(options, n.tq, n.tk);
  const std::size_t ld = (n.h + 2 * n.hkv) * n.d, bs = n.tq * ld;
  const T* p = qkv.data();
  T* dp = dqkv.data();
  detail::attention_backward_impl<T>({dp, ld, bs}, {dp + n.h * n.d, ld, bs},
                                     {dp + (n.h + n.hkv) * n.d, ld, bs}, detail::heads_in(dout), probs.data(),
                                     {p, ld, bs}, {p + n.h * n.d, ld, bs}, {p + (n.h + n.hkv) * n.d, ld, bs},
                                     n, plan, detail::default_scale<T>(options.scale, n.d));
}

}  // namespace p4lm::ops
