#pragma once
// Scaled dot-product attention on CUDA (ops/attention.hpp has the CPU version, the layouts and the
// masking rules; this file follows them exactly).
//
// Per (batch, head) item the products QKᵀ, PV and the four backward products are cuBLAS GEMMs, all items
// of one product in a single cublasSgemmBatched call whose pointer arrays are built on the device (no
// host round trip). Items are ordered (r, b, g) with query head h = g · group + r, so the items of one
// `r` touch distinct kv heads: the products that accumulate into dK and dV run one call per r, and the
// heads of a GQA group never race. Softmax and its backward are row kernels (one warp per query row).
//
// Unlike the CPU, which skips the columns past the last visible key, the GEMMs cover all Tk columns and
// the masked probabilities are exact zeros. Masked keys must therefore hold finite values (a NaN in an
// unused KV-cache slot would give 0 · NaN): fill caches before use.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include <cublas_v2.h>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::ops {

// The CUDA attention options: the same fields as the CPU's AttentionOptions<backend::cpu>, with the
// optional masks in device memory. (The primary template is defined in ops/attention.hpp.)
template <Backend B>
struct AttentionOptions;

template <>
struct AttentionOptions<backend::cuda> {
  bool causal = true;
  double scale = 0;                  // softmax(scale · q·k); 0 means 1/√D
  std::ptrdiff_t query_offset = -1;  // causal: query i sees keys j <= i + query_offset; -1: Tk - Tq
  TensorView<backend::cuda, std::int32_t> key_lengths{};  // (B): keys j >= key_lengths[b] are masked
  TensorView<backend::cuda, std::uint8_t> key_mask{};     // (B, Tk): keys with 0 are masked
  // The CPU's tuning fields, accepted and ignored here, so code that sets them compiles for both backends.
  std::size_t blas_min_work = 32768;
  std::size_t parallel_min_work = 65536;
  std::size_t causal_row_block = 64;
};

}  // namespace p4lm::ops

namespace p4lm::cuda::detail {

// (b, t, head, d) lives at p + b · batch_stride + t · ld + head · D + d.
struct HeadsPtr {
  const float* p;
  std::size_t ld;
  std::size_t batch_stride;
};
using AttnDims = ops::check::AttentionDims;
struct AttnMask {
  bool causal;
  long long offset;
  const std::int32_t* lengths;  // null: all Tk
  const std::uint8_t* mask;     // null: none
};

// Pointer arrays for cublasSgemmBatched: array a holds, for item it, the address of its matrix.
inline constexpr int max_ptr_arrays = 9;
enum class PtrKind : int { query_head, kv_head, scores };
struct PtrTable {
  int count;
  const float* base[max_ptr_arrays];
  std::size_t batch_stride[max_ptr_arrays];
  PtrKind kind[max_ptr_arrays];
};
template <class T>
__global__ void attention_pointers_kernel(const T** out, PtrTable table, AttnDims n) {
  const std::size_t items = n.b * n.h;
  const std::size_t it = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (it >= items) return;
  const std::size_t group = n.h / n.hkv, per_r = n.b * n.hkv;
  const std::size_t r = it / per_r, rest = it % per_r, b = rest / n.hkv, g = rest % n.hkv, h = g * group + r;
  for (int a = 0; a < table.count; ++a) {
    const float* p = table.base[a];
    switch (table.kind[a]) {
      case PtrKind::query_head:
        p += b * table.batch_stride[a] + h * n.d;
        break;
      case PtrKind::kv_head:
        p += b * table.batch_stride[a] + g * n.d;
        break;
      case PtrKind::scores:
        p += (b * n.h + h) * n.tq * n.tk;
        break;
    }
    out[a * items + it] = p;
  }
}

__device__ inline std::size_t visible_end(std::size_t i, std::size_t kv_len, bool causal, long long offset) {
  if (!causal) return kv_len;
  const long long last = static_cast<long long>(i) + offset;
  if (last < 0) return 0;
  return static_cast<std::size_t>(last) + 1 < kv_len ? static_cast<std::size_t>(last) + 1 : kv_len;
}

// In place over the scores of one query row per warp: masked keys -> 0, visible -> softmax; a row with
// no visible key becomes all zeros.
template <class T>
__global__ void attention_softmax_kernel(T* probs, AttnDims n, AttnMask m) {
  const std::size_t row = blockIdx.x * std::size_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= n.b * n.h * n.tq) return;
  const std::size_t b = row / (n.h * n.tq), i = row % n.tq;
  std::size_t kv_len = n.tk;
  if (m.lengths) {
    const long long len = m.lengths[b];
    kv_len = len <= 0 ? 0 : (static_cast<std::size_t>(len) < n.tk ? static_cast<std::size_t>(len) : n.tk);
  }
  const std::size_t end = visible_end(i, kv_len, m.causal, m.offset);
  const std::uint8_t* ok = m.mask ? m.mask + b * n.tk : nullptr;
  T* pr = probs + row * n.tk;
  float mx = -INFINITY;
  for (std::size_t j = lane; j < end; j += 32)
    if (!ok || ok[j]) mx = fmaxf(mx, pr[j]);
  mx = warp_max(mx);
  if (mx == -INFINITY) {
    for (std::size_t j = lane; j < n.tk; j += 32) pr[j] = 0.0f;
    return;
  }
  float sum = 0;
  for (std::size_t j = lane; j < n.tk; j += 32) {
    const float e = j < end && (!ok || ok[j]) ? expf(pr[j] - mx) : 0.0f;
    pr[j] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (std::size_t j = lane; j < end; j += 32) pr[j] *= inv;
}

// dS = P ⊙ (dP - Σ_j P dP), in place over dP, one row per warp.
template <class T>
__global__ void attention_softmax_backward_kernel(T* ds, const T* probs, std::size_t rows, std::size_t tk) {
  const std::size_t row = blockIdx.x * std::size_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;
  const T* pr = probs + row * tk;
  T* dr = ds + row * tk;
  float dot = 0;
  for (std::size_t j = lane; j < tk; j += 32) dot += pr[j] * dr[j];
  dot = warp_sum(dot);
  for (std::size_t j = lane; j < tk; j += 32) dr[j] = pr[j] * (dr[j] - dot);
}

inline void batched_gemm(const char* op, cublasOperation_t ta, cublasOperation_t tb, std::size_t m,
                         std::size_t n, std::size_t k, float alpha, const float* const* a, std::size_t lda,
                         const float* const* b, std::size_t ldb, float beta, const float* const* c,
                         std::size_t ldc, std::size_t count) {
  if (count == 0 || m == 0 || n == 0) return;
  P4LM_CUDA_CHECK(cublasSgemmBatched(current_context().blas(), ta, tb, to_int(m, op), to_int(n, op),
                                     to_int(k, op), &alpha, a, to_int(lda, op), b, to_int(ldb, op), &beta,
                                     const_cast<float* const*>(c), to_int(ldc, op), to_int(count, op)));
}

// Carves the workspace into the pointer arrays (first) and `extra_bytes` more (returned in *extra), and
// queues the kernel that fills the arrays from `table` (a null base in the table is replaced by *extra).
inline const float* const* build_pointers(PtrTable table, const AttnDims& n, std::size_t extra_bytes,
                                          void** extra) {
  const std::size_t items = n.b * n.h;
  const std::size_t ptr_bytes = aligned_bytes(sizeof(float*) * table.count * items);
  auto* base = static_cast<char*>(current_context().workspace(ptr_bytes + extra_bytes));
  if (extra) {
    *extra = base + ptr_bytes;
    for (int a = 0; a < table.count; ++a)
      if (!table.base[a]) table.base[a] = static_cast<const float*>(*extra);
  }
  auto** ptrs = reinterpret_cast<const float**>(base);
  attention_pointers_kernel<float>
      <<<grid_for(items, 128, ~0u >> 1), 128, 0, current_context().stream()>>>(ptrs, table, n);
  P4LM_CUDA_CHECK_LAUNCH(attention_pointers_kernel);
  return ptrs;
}

inline void attention_forward_impl(const char* op, float* out, float* probs, HeadsPtr q, HeadsPtr k,
                                   HeadsPtr v, const AttnDims& n, const AttnMask& mask, float scale) {
  const std::size_t items = n.b * n.h;
  if (items == 0 || n.tq == 0) return;
  cudaStream_t s = current_context().stream();
  const std::size_t out_numel = n.b * n.tq * n.h * n.d;
  if (n.tk == 0) {  // no keys: no probabilities, zero output
    fill(out, out_numel, 0.0f);
    return;
  }
  const PtrTable table{
      5,
      {q.p, k.p, v.p, probs, out},
      {q.batch_stride, k.batch_stride, v.batch_stride, 0, n.tq * n.h * n.d},
      {PtrKind::query_head, PtrKind::kv_head, PtrKind::kv_head, PtrKind::scores, PtrKind::query_head}};
  const float* const* ptr = build_pointers(table, n, 0, nullptr);
  const float *const *Q = ptr, *const *K = ptr + items, *const *V = ptr + 2 * items,
                     *const *P = ptr + 3 * items, *const *O = ptr + 4 * items;
  // Sᵀ (Tk x Tq) = scale · K (Tk x D) · Qᵀ (D x Tq), written into probs
  if (n.d == 0)
    fill(probs, items * n.tq * n.tk, 0.0f);
  else
    batched_gemm(op, CUBLAS_OP_T, CUBLAS_OP_N, n.tk, n.tq, n.d, scale, K, k.ld, Q, q.ld, 0.0f, P, n.tk,
                 items);
  const std::size_t rows = items * n.tq;
  attention_softmax_kernel<float><<<grid_for(rows, 8, ~0u >> 1), 256, 0, s>>>(probs, n, mask);
  P4LM_CUDA_CHECK_LAUNCH(attention_softmax_kernel);
  // outᵀ (D x Tq) = Vᵀ (D x Tk) · Pᵀ (Tk x Tq)
  if (n.d > 0)
    batched_gemm(op, CUBLAS_OP_N, CUBLAS_OP_N, n.d, n.tq, n.tk, 1.0f, V, v.ld, P, n.tk, 0.0f, O, n.h * n.d,
                 items);
}

inline void attention_backward_impl(const char* op, float* dq, std::size_t dq_ld, std::size_t dq_bs,
                                    float* dk, float* dv, std::size_t dkv_ld, std::size_t dkv_bs,
                                    HeadsPtr dout, const float* probs, HeadsPtr q, HeadsPtr k, HeadsPtr v,
                                    const AttnDims& n, float scale) {
  const std::size_t items = n.b * n.h;
  if (items == 0 || n.tq == 0 || n.tk == 0 || n.d == 0) return;
  cudaStream_t s = current_context().stream();
  void* extra = nullptr;
  const PtrTable table{
      9,
      {q.p, k.p, v.p, probs, dout.p, nullptr, dq, dk, dv},
      {q.batch_stride, k.batch_stride, v.batch_stride, 0, dout.batch_stride, 0, dq_bs, dkv_bs, dkv_bs},
      {PtrKind::query_head, PtrKind::kv_head, PtrKind::kv_head, PtrKind::scores, PtrKind::query_head,
       PtrKind::scores, PtrKind::query_head, PtrKind::kv_head, PtrKind::kv_head}};
  // dS gets its own (B, H, Tq, Tk) buffer after the pointer arrays (the table's null base).
  const float* const* ptr = build_pointers(table, n, sizeof(float) * items * n.tq * n.tk, &extra);
  auto* ds = static_cast<float*>(extra);
  const float *const *Q = ptr, *const *K = ptr + items, *const *V = ptr + 2 * items,
                     *const *P = ptr + 3 * items, *const *DO = ptr + 4 * items, *const *DS = ptr + 5 * items,
                     *const *DQ = ptr + 6 * items, *const *DK = ptr + 7 * items, *const *DV = ptr + 8 * items;
  const std::size_t group = n.h / n.hkv, per_r = n.b * n.hkv;
  // dVᵀ (D x Tk) += dOᵀ (D x Tq) · P (Tq x Tk): one call per r, so no two items share a kv head
  for (std::size_t r = 0; r < group; ++r)
    batched_gemm(op, CUBLAS_OP_N, CUBLAS_OP_T, n.d, n.tk, n.tq, 1.0f, DO + r * per_r, dout.ld, P + r * per_r,
                 n.tk, 1.0f, DV + r * per_r, dkv_ld, per_r);
  // dPᵀ (Tk x Tq) = V (Tk x D) · dOᵀ (D x Tq), into dS
  batched_gemm(op, CUBLAS_OP_T, CUBLAS_OP_N, n.tk, n.tq, n.d, 1.0f, V, v.ld, DO, dout.ld, 0.0f, DS, n.tk,
               items);
  const std::size_t rows = items * n.tq;
  attention_softmax_backward_kernel<float><<<grid_for(rows, 8, ~0u >> 1), 256, 0, s>>>(ds, probs, rows, n.tk);
  P4LM_CUDA_CHECK_LAUNCH(attention_softmax_backward_kernel);
  // dQᵀ (D x Tq) += scale · Kᵀ (D x Tk) · dSᵀ (Tk x Tq)
  batched_gemm(op, CUBLAS_OP_N, CUBLAS_OP_N, n.d, n.tq, n.tk, scale, K, k.ld, DS, n.tk, 1.0f, DQ, dq_ld,
               items);
  // dKᵀ (D x Tk) += scale · Qᵀ (D x Tq) · dS (Tq x Tk), one call per r
  for (std::size_t r = 0; r < group; ++r)
    batched_gemm(op, CUBLAS_OP_N, CUBLAS_OP_T, n.d, n.tk, n.tq, scale, Q + r * per_r, q.ld, DS + r * per_r,
                 n.tk, 1.0f, DK + r * per_r, dkv_ld, per_r);
}

// The options' shapes are checked by ops::check::attention_keys.
inline AttnMask make_mask(const ops::AttentionOptions<backend::cuda>& opt, std::size_t tq, std::size_t tk) {
  AttnMask m{opt.causal, static_cast<long long>(opt.query_offset), nullptr, nullptr};
  if (opt.query_offset < 0) m.offset = static_cast<long long>(tk) - static_cast<long long>(tq);
  if (is_given(opt.key_lengths)) m.lengths = opt.key_lengths.data();
  if (is_given(opt.key_mask)) m.mask = opt.key_mask.data();
  return m;
}
inline HeadsPtr heads(const ops::CudaView& t) {
  return {t.data(), t.dim(2) * t.dim(3), t.dim(1) * t.dim(2) * t.dim(3)};
}
inline float attention_scale(double scale, std::size_t d) {
  return static_cast<float>(scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(d)));
}

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// q (B, Tq, H, D), k, v (B, Tk, Hkv, D) -> out (B, Tq, H, D); probs (B, H, Tq, Tk) cached for backward
inline void attention_forward(CudaView out, CudaView probs, const CudaView& q, const CudaView& k,
                              const CudaView& v, const AttentionOptions<backend::cuda>& options = {}) {
  namespace d = cuda::detail;
  const auto n = check::attention_forward(out, probs, q, k, v, options);
  const auto mask = d::make_mask(options, n.tq, n.tk);
  d::attention_forward_impl("attention_forward", out.data(), probs.data(), d::heads(q), d::heads(k),
                            d::heads(v), n, mask, d::attention_scale(options.scale, n.d));
}

// Accumulates dq (B, Tq, H, D), dk, dv (B, Tk, Hkv, D) from dout (B, Tq, H, D); options as in forward
inline void attention_backward(CudaView dq, CudaView dk, CudaView dv, const CudaView& dout, const CudaView& q,
                               const CudaView& k, const CudaView& v, const CudaView& probs,
                               const AttentionOptions<backend::cuda>& options = {}) {
  namespace d = cuda::detail;
  const auto n =
      check::attention_backward(dq, dk, dv, dout, q, k, v, probs, options);  // probs carry the mask
  const auto hq = d::heads(dq), hk = d::heads(dk);
  d::attention_backward_impl("attention_backward", dq.data(), hq.ld, hq.batch_stride, dk.data(), dv.data(),
                             hk.ld, hk.batch_stride, d::heads(dout), probs.data(), d::heads(q), d::heads(k),
                             d::heads(v), n, d::attention_scale(options.scale, n.d));
}

// Fused: qkv (B, T, (H + 2 Hkv) D), each token [q heads | k heads | v heads] -> out (B, T, H, D);
// probs (B, H, T, T). H and D are read from out.
inline void attention_forward_qkv(CudaView out, CudaView probs, const CudaView& qkv, std::size_t n_kv_heads,
                                  const AttentionOptions<backend::cuda>& options = {}) {
  namespace d = cuda::detail;
  const auto n = check::attention_forward_qkv(out, probs, qkv, n_kv_heads, options);
  const auto mask = d::make_mask(options, n.tq, n.tk);
  const std::size_t ld = (n.h + 2 * n.hkv) * n.d, bs = n.tq * ld;
  const float* p = qkv.data();
  d::attention_forward_impl("attention_forward_qkv", out.data(), probs.data(), {p, ld, bs},
                            {p + n.h * n.d, ld, bs}, {p + (n.h + n.hkv) * n.d, ld, bs}, n, mask,
                            d::attention_scale(options.scale, n.d));
}

// Fused backward: accumulates dqkv (B, T, (H + 2 Hkv) D) from dout (B, T, H, D).
inline void attention_backward_qkv(CudaView dqkv, const CudaView& dout, const CudaView& qkv,
                                   const CudaView& probs, std::size_t n_kv_heads,
                                   const AttentionOptions<backend::cuda>& options = {}) {
  namespace d = cuda::detail;
  const auto n = check::attention_backward_qkv(dqkv, dout, qkv, probs, n_kv_heads, options);
  const std::size_t ld = (n.h + 2 * n.hkv) * n.d, bs = n.tq * ld;
  const float* p = qkv.data();
  float* dp = dqkv.data();
  d::attention_backward_impl("attention_backward_qkv", dp, ld, bs, dp + n.h * n.d, dp + (n.h + n.hkv) * n.d,
                             ld, bs, d::heads(dout), probs.data(), {p, ld, bs}, {p + n.h * n.d, ld, bs},
                             {p + (n.h + n.hkv) * n.d, ld, bs}, n, d::attention_scale(options.scale, n.d));
}

}  // namespace p4lm::ops
