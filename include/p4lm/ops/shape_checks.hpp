#pragma once
// The arguments every op accepts, checked once for every backend: the CPU ops (ops/*.hpp) and the
// CUDA ops (backend/cuda/*.cuh) call these before touching data, so both accept exactly the same
// shapes and word their errors the same way, naming the op and the tensor ("rope_forward: positions:
// expected shape ..."). Templates over any view type (anything with shape(), rank(), dim(), data()),
// so this header needs neither xtensor nor CUDA. Backend-only limits (BLAS's 32-bit sizes) stay with
// the backend.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/shape_check.hpp"
#include "p4lm/core/tensor_view.hpp"

namespace p4lm::ops::check {

namespace detail {
inline std::string name(const char* op, const char* tensor) {
  return std::string(op) + ": " + tensor;
}
inline void same(const char* op, const char* tensor, const Shape& actual, const Shape& expected) {
  expect_shape(name(op, tensor).c_str(), actual, expected);
}
}  // namespace detail

// ---- element-wise ops ----

// out has inp's shape (gelu, gelu_erf and other unary ops).
template <class V>
void unary_forward(const char* op, const V& out, const V& inp) {
  detail::same(op, "out", out.shape(), inp.shape());
}
// dout and dinp have inp's shape.
template <class V>
void unary_backward(const char* op, const V& dinp, const V& dout, const V& inp) {
  detail::same(op, "dout", dout.shape(), inp.shape());
  detail::same(op, "dinp", dinp.shape(), inp.shape());
}

template <class V>
void swiglu_forward(const V& out, const V& gate, const V& up) {
  expect_shape("swiglu_forward: up", up.shape(), gate.shape());
  expect_shape("swiglu_forward: out", out.shape(), gate.shape());
}
template <class V>
void swiglu_backward(const V& dgate, const V& dup, const V& dout, const V& gate, const V& up) {
  expect_shape("swiglu_backward: up", up.shape(), gate.shape());
  expect_shape("swiglu_backward: dout", dout.shape(), gate.shape());
  if (is_given(dgate)) expect_shape("swiglu_backward: dgate", dgate.shape(), gate.shape());
  if (is_given(dup)) expect_shape("swiglu_backward: dup", dup.shape(), gate.shape());
}

template <class V>
void residual_forward(const V& out, const V& a, const V& b) {
  expect_shape("residual_forward: b", b.shape(), a.shape());
  expect_shape("residual_forward: out", out.shape(), a.shape());
}
template <class V>
void residual_backward(const V& da, const V& db, const V& dout) {
  if (is_given(da)) expect_shape("residual_backward: da", da.shape(), dout.shape());
  if (is_given(db)) expect_shape("residual_backward: db", db.shape(), dout.shape());
}

inline void dropout_probability(const char* op, double p) {
  if (!(p >= 0.0 && p < 1.0)) fail<InvalidArgument>(op, ": dropout probability ", p, " is outside [0, 1)");
}
// dropout_forward (out, inp) and dropout_backward (dinp, dout): same shapes, p in [0, 1).
template <class V>
void dropout(const char* op, const char* out_name, const V& out, const V& in, double p) {
  detail::same(op, out_name, out.shape(), in.shape());
  dropout_probability(op, p);
}

// ---- products ----

struct MatmulDims {
  std::size_t rows, in, out;  // N rows of inp, C input features, OC output features
};

// inp (..., C), weight (OC, C), bias (OC) or {} -> out (..., OC)
template <class V>
MatmulDims matmul_forward(const V& out, const V& inp, const V& weight, const V& bias) {
  expect_rank_at_least("matmul_forward: inp", inp.shape(), 1);
  const MatmulDims n{inp.shape().rows(), inp.shape().last(), out.shape().last()};
  expect_shape("matmul_forward: weight", weight.shape(), Shape{n.out, n.in});
  expect_shape("matmul_forward: out", out.shape(), with_last(inp.shape(), n.out));
  if (is_given(bias)) expect_shape("matmul_forward: bias", bias.shape(), Shape{n.out});
  return n;
}
// dout (..., OC), inp (..., C), weight (OC, C); dinp, dweight, dbias optional
template <class V>
MatmulDims matmul_backward(const V& dinp, const V& dweight, const V& dbias, const V& dout, const V& inp,
                           const V& weight) {
  expect_rank_at_least("matmul_backward: inp", inp.shape(), 1);
  const MatmulDims n{inp.shape().rows(), inp.shape().last(), dout.shape().last()};
  expect_shape("matmul_backward: weight", weight.shape(), Shape{n.out, n.in});
  expect_shape("matmul_backward: dout", dout.shape(), with_last(inp.shape(), n.out));
  if (is_given(dinp)) expect_shape("matmul_backward: dinp", dinp.shape(), inp.shape());
  if (is_given(dweight)) expect_shape("matmul_backward: dweight", dweight.shape(), weight.shape());
  if (is_given(dbias)) expect_shape("matmul_backward: dbias", dbias.shape(), Shape{n.out});
  return n;
}

struct BatchedMatmulDims {
  std::size_t batch, m, n, k;
};

// c (batch..., M, N); a (batch..., M, K) or (batch..., K, M) when trans_a; b (batch..., K, N) or
// (batch..., N, K) when trans_b; a or b may be rank 2 (one matrix shared by every batch entry).
template <class V>
BatchedMatmulDims batched_matmul(const V& c, const V& a, const V& b, bool trans_a, bool trans_b) {
  expect_rank_at_least("batched_matmul: c", c.shape(), 2);
  expect_rank_at_least("batched_matmul: a", a.shape(), 2);
  const Shape& cs = c.shape();
  const std::size_t M = cs[cs.rank() - 2], N = cs[cs.rank() - 1];
  const std::size_t K = a.shape()[a.rank() - (trans_a ? 2 : 1)];
  // c's batch dimensions (none for a rank-2 operand) followed by the stored matrix shape.
  const auto expected = [&](const V& x, std::size_t rows, std::size_t cols) {
    if (x.rank() == 2) return Shape{rows, cols};
    Shape s = cs;
    s[s.rank() - 2] = rows;
    s[s.rank() - 1] = cols;
    return s;
  };
  expect_shape("batched_matmul: a", a.shape(), trans_a ? expected(a, K, M) : expected(a, M, K));
  expect_shape("batched_matmul: b", b.shape(), trans_b ? expected(b, N, K) : expected(b, K, N));
  return {cs.numel() / (M * N > 0 ? M * N : 1), M, N, K};
}

// ---- embeddings, norms, RoPE ----

// ids (..., T), wte (V, C), wpe (>= T, C) or {} -> out (..., T, C). Returns C.
template <class V, class I>
std::size_t embedding_forward(const V& out, const I& ids, const V& wte, const V& wpe) {
  expect_rank_at_least("embedding_forward: ids", ids.shape(), 1);
  expect_rank_at_least("embedding_forward: wte", wte.shape(), 2);
  const std::size_t C = wte.shape().last(), Tn = ids.shape().last();
  expect_shape("embedding_forward: wte", wte.shape(), Shape{wte.dim(0), C});
  expect_shape("embedding_forward: out", out.shape(), append_dim(ids.shape(), C));
  if (is_given(wpe) && (wpe.rank() != 2 || wpe.shape().last() != C || wpe.dim(0) < Tn))
    fail<ShapeError>("embedding_forward: wpe: expected shape (>= ", Tn, ", ", C, "), got ", wpe.shape());
  return C;
}
// dout (..., T, C), ids (..., T); dwte (V, C) and dwpe (>= T, C) optional. Returns C.
template <class V, class I>
std::size_t embedding_backward(const V& dwte, const V& dwpe, const V& dout, const I& ids) {
  expect_rank_at_least("embedding_backward: ids", ids.shape(), 1);
  expect_rank_at_least("embedding_backward: dout", dout.shape(), 2);
  const std::size_t C = dout.shape().last(), Tn = ids.shape().last();
  expect_shape("embedding_backward: dout", dout.shape(), append_dim(ids.shape(), C));
  if (is_given(dwte) && (dwte.rank() != 2 || dwte.shape().last() != C))
    fail<ShapeError>("embedding_backward: dwte: expected shape (V, ", C, "), got ", dwte.shape());
  if (is_given(dwpe) && (dwpe.rank() != 2 || dwpe.shape().last() != C || dwpe.dim(0) < Tn))
    fail<ShapeError>("embedding_backward: dwpe: expected shape (>= ", Tn, ", ", C, "), got ", dwpe.shape());
  return C;
}

// x (..., C), weight and bias (C), mean and rstd one per row -> out like x. Returns C.
template <class V>
std::size_t layernorm_forward(const V& out, const V& mean, const V& rstd, const V& x, const V& weight,
                              const V& bias) {
  const std::size_t c = x.shape().last();
  expect_shape("layernorm_forward: out", out.shape(), x.shape());
  expect_shape("layernorm_forward: weight", weight.shape(), Shape{c});
  expect_shape("layernorm_forward: bias", bias.shape(), Shape{c});
  expect_rows("layernorm_forward", "mean", mean, x.shape());
  expect_rows("layernorm_forward", "rstd", rstd, x.shape());
  return c;
}
template <class V>
std::size_t layernorm_backward(const V& dx, const V& dweight, const V& dbias, const V& dout, const V& x,
                               const V& weight, const V& mean, const V& rstd) {
  const std::size_t c = x.shape().last();
  expect_shape("layernorm_backward: dx", dx.shape(), x.shape());
  expect_shape("layernorm_backward: dout", dout.shape(), x.shape());
  expect_shape("layernorm_backward: weight", weight.shape(), Shape{c});
  expect_shape("layernorm_backward: dweight", dweight.shape(), Shape{c});
  expect_shape("layernorm_backward: dbias", dbias.shape(), Shape{c});
  expect_rows("layernorm_backward", "mean", mean, x.shape());
  expect_rows("layernorm_backward", "rstd", rstd, x.shape());
  return c;
}

template <class V>
std::size_t rmsnorm_forward(const V& out, const V& rstd, const V& x, const V& weight) {
  const std::size_t c = x.shape().last();
  expect_shape("rmsnorm_forward: out", out.shape(), x.shape());
  expect_shape("rmsnorm_forward: weight", weight.shape(), Shape{c});
  expect_rows("rmsnorm_forward", "rstd", rstd, x.shape());
  return c;
}
template <class V>
std::size_t rmsnorm_backward(const V& dx, const V& dweight, const V& dout, const V& x, const V& weight,
                             const V& rstd) {
  const std::size_t c = x.shape().last();
  expect_shape("rmsnorm_backward: dx", dx.shape(), x.shape());
  expect_shape("rmsnorm_backward: dout", dout.shape(), x.shape());
  expect_shape("rmsnorm_backward: weight", weight.shape(), Shape{c});
  expect_shape("rmsnorm_backward: dweight", dweight.shape(), Shape{c});
  expect_rows("rmsnorm_backward", "rstd", rstd, x.shape());
  return c;
}

// x (B, T, H, D) with D even, out (named out_name) like x, positions (B, T) or (T). Returns true when
// the positions are shared by the batch ((T)).
template <class V, class I>
bool rope(const char* op, const char* out_name, const V& out, const V& x, const I& positions) {
  if (x.rank() != 4) fail<ShapeError>(op, ": expected rank 4 (B, T, H, D), got shape ", x.shape());
  detail::same(op, out_name, out.shape(), x.shape());
  if (x.dim(3) % 2 != 0) fail<ShapeError>(op, ": head size D must be even, got shape ", x.shape());
  const Shape per_batch{x.dim(0), x.dim(1)};
  const Shape shared{x.dim(1)};
  if (positions.shape() == per_batch) return false;
  if (positions.shape() == shared) return true;
  fail<ShapeError>(op, ": positions: expected shape ", per_batch, " or ", shared, " for x ", x.shape(),
                   ", got ", positions.shape());
  return false;  // not reached (fail throws); nvcc does not see [[noreturn]] through the template
}

// ---- attention ----

struct AttentionDims {
  std::size_t b, tq, tk, h, hkv, d;
};

// q (B, Tq, H, D), k and v (B, Tk, Hkv, D) with Hkv dividing H.
template <class V>
AttentionDims attention_qkv(const char* op, const V& q, const V& k, const V& v) {
  if (q.rank() != 4) fail<ShapeError>(op, ": q: expected rank 4 (B, Tq, H, D), got shape ", q.shape());
  if (k.rank() != 4) fail<ShapeError>(op, ": k: expected rank 4 (B, Tk, Hkv, D), got shape ", k.shape());
  const AttentionDims n{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  if (k.dim(0) != n.b || k.dim(3) != n.d || n.hkv == 0 || n.h % n.hkv != 0)
    fail<ShapeError>(op, ": k: shape ", k.shape(), " does not fit q ", q.shape(),
                     " (same B and D, kv heads dividing ", n.h, " query heads)");
  detail::same(op, "v", v.shape(), k.shape());
  return n;
}

// Fused layout: H and D come from out (B, T, H, D); qkv must be (B, T, (H + 2 Hkv) D).
template <class V>
AttentionDims attention_fused(const char* op, const V& out, const V& qkv, std::size_t n_kv_heads) {
  if (out.rank() != 4) fail<ShapeError>(op, ": out: expected rank 4 (B, T, H, D), got shape ", out.shape());
  const AttentionDims n{out.dim(0), out.dim(1), out.dim(1), out.dim(2), n_kv_heads, out.dim(3)};
  if (n.hkv == 0 || n.h % n.hkv != 0)
    fail<ShapeError>(op, ": n_kv_heads ", n.hkv, " does not divide the ", n.h, " query heads of out ",
                     out.shape());
  detail::same(op, "qkv", qkv.shape(), Shape{n.b, n.tq, (n.h + 2 * n.hkv) * n.d});
  return n;
}

// AttentionOptions' optional key_lengths (B) and key_mask (B, Tk).
template <class Options>
void attention_keys(const char* op, const Options& opt, std::size_t b, std::size_t tk) {
  if (is_given(opt.key_lengths)) detail::same(op, "key_lengths", opt.key_lengths.shape(), Shape{b});
  if (is_given(opt.key_mask)) detail::same(op, "key_mask", opt.key_mask.shape(), Shape{b, tk});
}

template <class V, class Options>
AttentionDims attention_forward(const V& out, const V& probs, const V& q, const V& k, const V& v,
                                const Options& opt) {
  const auto n = attention_qkv("attention_forward", q, k, v);
  expect_shape("attention_forward: out", out.shape(), q.shape());
  expect_shape("attention_forward: probs", probs.shape(), Shape{n.b, n.h, n.tq, n.tk});
  attention_keys("attention_forward", opt, n.b, n.tk);
  return n;
}
template <class V, class Options>
AttentionDims attention_backward(const V& dq, const V& dk, const V& dv, const V& dout, const V& q, const V& k,
                                 const V& v, const V& probs, const Options& opt) {
  const auto n = attention_qkv("attention_backward", q, k, v);
  expect_shape("attention_backward: dout", dout.shape(), q.shape());
  expect_shape("attention_backward: dq", dq.shape(), q.shape());
  expect_shape("attention_backward: dk", dk.shape(), k.shape());
  expect_shape("attention_backward: dv", dv.shape(), v.shape());
  expect_shape("attention_backward: probs", probs.shape(), Shape{n.b, n.h, n.tq, n.tk});
  attention_keys("attention_backward", opt, n.b, n.tk);
  return n;
}
template <class V, class Options>
AttentionDims attention_forward_qkv(const V& out, const V& probs, const V& qkv, std::size_t n_kv_heads,
                                    const Options& opt) {
  const auto n = attention_fused("attention_forward_qkv", out, qkv, n_kv_heads);
  expect_shape("attention_forward_qkv: probs", probs.shape(), Shape{n.b, n.h, n.tq, n.tk});
  attention_keys("attention_forward_qkv", opt, n.b, n.tk);
  return n;
}
template <class V, class Options>
AttentionDims attention_backward_qkv(const V& dqkv, const V& dout, const V& qkv, const V& probs,
                                     std::size_t n_kv_heads, const Options& opt) {
  const auto n = attention_fused("attention_backward_qkv", dout, qkv, n_kv_heads);
  expect_shape("attention_backward_qkv: dqkv", dqkv.shape(), qkv.shape());
  expect_shape("attention_backward_qkv: probs", probs.shape(), Shape{n.b, n.h, n.tq, n.tk});
  attention_keys("attention_backward_qkv", opt, n.b, n.tk);
  return n;
}

// ---- losses ----

// logits (..., V), targets (...): one target per row of logits.
template <class V, class I>
void class_targets(const char* op, const V& logits, const I& targets) {
  expect_rank_at_least(op, logits.shape(), 1);
  if (!(append_dim(targets.shape(), logits.shape().last()) == logits.shape()))
    fail<ShapeError>(op, ": targets: expected shape ",
                     Shape::from(std::span(logits.shape().begin(), logits.rank() - 1)), " (logits are ",
                     logits.shape(), "), got ", targets.shape());
}

template <class V, class I>
void softmax_cross_entropy_forward(const V& losses, const V& probs, const V& logits, const I& targets) {
  class_targets("softmax_cross_entropy_forward", logits, targets);
  expect_shape("softmax_cross_entropy_forward: losses", losses.shape(), targets.shape());
  if (is_given(probs)) expect_shape("softmax_cross_entropy_forward: probs", probs.shape(), logits.shape());
}
template <class V, class I>
void softmax_cross_entropy_backward(const V& dlogits, const V& probs, const I& targets) {
  class_targets("softmax_cross_entropy_backward", probs, targets);
  expect_shape("softmax_cross_entropy_backward: dlogits", dlogits.shape(), probs.shape());
}
template <class V, class I>
void softmax_cross_entropy_fused(const V& logits, const V& losses, const I& targets) {
  class_targets("softmax_cross_entropy_fused", logits, targets);
  expect_shape("softmax_cross_entropy_fused: losses", losses.shape(), targets.shape());
}

template <class V, class I>
void logprob_gather_forward(const V& logprobs, const V& lse, const V& entropy, const V& logits,
                            const I& ids) {
  class_targets("logprob_gather_forward", logits, ids);
  expect_shape("logprob_gather_forward: logprobs", logprobs.shape(), ids.shape());
  if (is_given(lse)) expect_shape("logprob_gather_forward: lse", lse.shape(), ids.shape());
  if (is_given(entropy)) expect_shape("logprob_gather_forward: entropy", entropy.shape(), ids.shape());
}
template <class V, class I>
void logprob_gather_backward(const V& dlogits, const V& dlogprobs, const V& logits, const I& ids,
                             const V& lse) {
  class_targets("logprob_gather_backward", logits, ids);
  expect_shape("logprob_gather_backward: dlogits", dlogits.shape(), logits.shape());
  expect_shape("logprob_gather_backward: dlogprobs", dlogprobs.shape(), ids.shape());
  if (is_given(lse)) expect_shape("logprob_gather_backward: lse", lse.shape(), ids.shape());
}

// Two tensors of one shape (mse: pred/target, bce: logits/labels, bradley_terry: chosen/rejected);
// op and the second tensor's name make the message.
template <class V>
void paired(const char* op, const char* second_name, const V& first, const V& second) {
  detail::same(op, second_name, second.shape(), first.shape());
}
// ... and an optional gradient of the first one's shape.
template <class V>
void paired_grad(const char* op, const char* grad_name, const V& grad, const V& first) {
  if (is_given(grad)) detail::same(op, grad_name, grad.shape(), first.shape());
}

// ---- optimizer ----

template <class V>
void adamw_update(const V& params, const V& grads, const V& m, const V& v, std::int64_t step) {
  expect_shape("adamw_update: grads", grads.shape(), params.shape());
  expect_shape("adamw_update: m", m.shape(), params.shape());
  expect_shape("adamw_update: v", v.shape(), params.shape());
  if (step < 1)
    fail<InvalidArgument>("adamw_update: step ", step, " must be >= 1 (the first update is step 1)");
}

inline void clip_max_norm(double max_norm) {
  if (!(max_norm > 0)) fail<InvalidArgument>("clip_grad_norm: max_norm ", max_norm, " must be > 0");
}

}  // namespace p4lm::ops::check
