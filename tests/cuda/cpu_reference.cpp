// The CPU reference for the CUDA conformance tests: thin float wrappers over p4lm::ops (g++ only).

#include "cpu_reference.hpp"

#include <p4lm/ops/attention.hpp>
#include <p4lm/ops/layernorm.hpp>
#include <p4lm/ops/ops.hpp>
#include <p4lm/ops/rmsnorm.hpp>
#include <p4lm/ops/rope.hpp>

namespace ref {
namespace ops = p4lm::ops;

void matmul_forward(View out, const View& inp, const View& weight, const View& bias) {
  ops::matmul_forward(out, inp, weight, bias);
}
void matmul_backward(View dinp, View dweight, View dbias, const View& dout, const View& inp,
                     const View& weight) {
  ops::matmul_backward(dinp, dweight, dbias, dout, inp, weight);
}
void batched_matmul(View c, const View& a, const View& b, bool trans_a, bool trans_b, float alpha,
                    float beta) {
  ops::batched_matmul(c, a, b, trans_a, trans_b, alpha, beta);
}
void embedding_forward(View out, const Ids& ids, const View& wte, const View& wpe) {
  ops::embedding_forward(out, ids, wte, wpe);
}
void embedding_backward(View dwte, View dwpe, const View& dout, const Ids& ids) {
  ops::embedding_backward(dwte, dwpe, dout, ids);
}
void gelu_forward(View out, const View& inp) {
  ops::gelu_forward(out, inp);
}
void gelu_backward(View dinp, const View& dout, const View& inp) {
  ops::gelu_backward(dinp, dout, inp);
}
void swiglu_forward(View out, const View& gate, const View& up) {
  ops::swiglu_forward(out, gate, up);
}
void swiglu_backward(View dgate, View dup, const View& dout, const View& gate, const View& up) {
  ops::swiglu_backward(dgate, dup, dout, gate, up);
}
void residual_forward(View out, const View& a, const View& b) {
  ops::residual_forward(out, a, b);
}
void residual_backward(View da, View db, const View& dout) {
  ops::residual_backward(da, db, dout);
}
void dropout_forward(View out, const View& inp, double p, std::uint64_t seed, std::uint64_t stream) {
  ops::dropout_forward(out, inp, p, seed, stream);
}
void dropout_backward(View dinp, const View& dout, double p, std::uint64_t seed, std::uint64_t stream) {
  ops::dropout_backward(dinp, dout, p, seed, stream);
}
void layernorm_forward(View out, View mean, View rstd, const View& x, const View& w, const View& b,
                       float eps) {
  ops::layernorm_forward(out, mean, rstd, x, w, b, eps);
}
void layernorm_backward(View dx, View dw, View db, const View& dout, const View& x, const View& w,
                        const View& mean, const View& rstd) {
  ops::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd);
}
void rmsnorm_forward(View out, View rstd, const View& x, const View& w, float eps) {
  ops::rmsnorm_forward(out, rstd, x, w, eps);
}
void rmsnorm_backward(View dx, View dw, const View& dout, const View& x, const View& w, const View& rstd) {
  ops::rmsnorm_backward(dx, dw, dout, x, w, rstd);
}
void rope_forward(View out, const View& x, const Ids& positions, double theta) {
  ops::rope_forward(out, x, positions, theta);
}
void rope_backward(View dx, const View& dout, const Ids& positions, double theta) {
  ops::rope_backward(dx, dout, positions, theta);
}

static ops::AttentionOptions<p4lm::backend::cpu> cpu_options(const AttnOptions& o, std::size_t b,
                                                             std::size_t tk) {
  ops::AttentionOptions<p4lm::backend::cpu> opt;
  opt.causal = o.causal;
  opt.scale = o.scale;
  opt.query_offset = o.query_offset;
  if (o.key_lengths) opt.key_lengths = {const_cast<std::int32_t*>(o.key_lengths), p4lm::Shape{b}};
  if (o.key_mask) opt.key_mask = {const_cast<std::uint8_t*>(o.key_mask), p4lm::Shape{b, tk}};
  return opt;
}
void attention_forward(View out, View probs, const View& q, const View& k, const View& v,
                       const AttnOptions& o) {
  ops::attention_forward(out, probs, q, k, v, cpu_options(o, q.dim(0), k.dim(1)));
}
void attention_backward(View dq, View dk, View dv, const View& dout, const View& q, const View& k,
                        const View& v, const View& probs, const AttnOptions& o) {
  ops::attention_backward(dq, dk, dv, dout, q, k, v, probs, cpu_options(o, q.dim(0), k.dim(1)));
}
void attention_forward_qkv(View out, View probs, const View& qkv, std::size_t n_kv_heads,
                           const AttnOptions& o) {
  ops::attention_forward_qkv(out, probs, qkv, n_kv_heads, cpu_options(o, qkv.dim(0), qkv.dim(1)));
}
void attention_backward_qkv(View dqkv, const View& dout, const View& qkv, const View& probs,
                            std::size_t n_kv_heads, const AttnOptions& o) {
  ops::attention_backward_qkv(dqkv, dout, qkv, probs, n_kv_heads, cpu_options(o, qkv.dim(0), qkv.dim(1)));
}

float softmax_cross_entropy_forward(View losses, View probs, const View& logits, const Ids& targets,
                                    std::int32_t ignore) {
  return ops::softmax_cross_entropy_forward(losses, probs, logits, targets, ignore);
}
void softmax_cross_entropy_backward(View dlogits, const View& probs, const Ids& targets, float dloss,
                                    std::int32_t ignore) {
  ops::softmax_cross_entropy_backward(dlogits, probs, targets, dloss, ignore);
}
float softmax_cross_entropy_fused(View logits, View losses, const Ids& targets, float dloss,
                                  std::int32_t ignore) {
  return ops::softmax_cross_entropy_fused(logits, losses, targets, dloss, ignore);
}
void logprob_gather_forward(View logprobs, View lse, View entropy, const View& logits, const Ids& ids,
                            std::int32_t ignore) {
  ops::logprob_gather_forward(logprobs, lse, entropy, logits, ids, ignore);
}
void logprob_gather_backward(View dlogits, const View& dlogprobs, const View& logits, const Ids& ids,
                             const View& lse, std::int32_t ignore) {
  ops::logprob_gather_backward(dlogits, dlogprobs, logits, ids, lse, ignore);
}
void adamw_update(View params, const View& grads, View m, View v, std::int64_t step, double lr, double beta1,
                  double beta2, double eps, double weight_decay) {
  ops::adamw_update(params, grads, m, v, step, ops::AdamWConfig{lr, beta1, beta2, eps, weight_decay});
}
double global_grad_norm(const std::vector<View>& grads) {
  return ops::global_grad_norm(grads);
}
double clip_grad_norm(const std::vector<View>& grads, double max_norm) {
  return ops::clip_grad_norm(grads, max_norm);
}
float mse_forward(const View& pred, const View& target) {
  return ops::mse_forward(pred, target);
}
void mse_backward(View dpred, const View& pred, const View& target, float dloss) {
  ops::mse_backward(dpred, pred, target, dloss);
}
float bce_with_logits_forward(const View& logits, const View& labels) {
  return ops::bce_with_logits_forward(logits, labels);
}
void bce_with_logits_backward(View dlogits, const View& logits, const View& labels, float dloss) {
  ops::bce_with_logits_backward(dlogits, logits, labels, dloss);
}
float bradley_terry_forward(const View& chosen, const View& rejected) {
  return ops::bradley_terry_forward(chosen, rejected);
}
void bradley_terry_backward(View dchosen, View drejected, const View& chosen, const View& rejected,
                            float dloss) {
  ops::bradley_terry_backward(dchosen, drejected, chosen, rejected, dloss);
}

}  // namespace ref
