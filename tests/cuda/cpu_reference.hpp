#pragma once
// The CPU ops as plain float functions, for the CUDA conformance tests. They are compiled by g++ in
// cpu_reference.cpp (xtensor, OpenMP), so the .cu test files include only this header and the CUDA
// backend: nvcc never sees xtensor, and the slow CPU headers compile once, in parallel with the .cu files.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <p4lm/core/tensor_view.hpp>

namespace ref {

using View = p4lm::TensorView<p4lm::backend::cpu, float>;
using Ids = p4lm::TensorView<p4lm::backend::cpu, std::int32_t>;

struct AttnOptions {
  bool causal = true;
  double scale = 0;
  std::ptrdiff_t query_offset = -1;
  const std::int32_t* key_lengths = nullptr;  // host, B entries, or null
  const std::uint8_t* key_mask = nullptr;     // host, B x Tk entries, or null
};

void matmul_forward(View out, const View& inp, const View& weight, const View& bias);
void matmul_backward(View dinp, View dweight, View dbias, const View& dout, const View& inp,
                     const View& weight);
void batched_matmul(View c, const View& a, const View& b, bool trans_a, bool trans_b, float alpha,
                    float beta);
void embedding_forward(View out, const Ids& ids, const View& wte, const View& wpe);
void embedding_backward(View dwte, View dwpe, const View& dout, const Ids& ids);
void gelu_forward(View out, const View& inp);
void gelu_backward(View dinp, const View& dout, const View& inp);
void swiglu_forward(View out, const View& gate, const View& up);
void swiglu_backward(View dgate, View dup, const View& dout, const View& gate, const View& up);
void residual_forward(View out, const View& a, const View& b);
void residual_backward(View da, View db, const View& dout);
void dropout_forward(View out, const View& inp, double p, std::uint64_t seed, std::uint64_t stream);
void dropout_backward(View dinp, const View& dout, double p, std::uint64_t seed, std::uint64_t stream);
void layernorm_forward(View out, View mean, View rstd, const View& x, const View& w, const View& b,
                       float eps);
void layernorm_backward(View dx, View dw, View db, const View& dout, const View& x, const View& w,
                        const View& mean, const View& rstd);
void rmsnorm_forward(View out, View rstd, const View& x, const View& w, float eps);
void rmsnorm_backward(View dx, View dw, const View& dout, const View& x, const View& w, const View& rstd);
void rope_forward(View out, const View& x, const Ids& positions, double theta);
void rope_backward(View dx, const View& dout, const Ids& positions, double theta);
void attention_forward(View out, View probs, const View& q, const View& k, const View& v,
                       const AttnOptions& o);
void attention_backward(View dq, View dk, View dv, const View& dout, const View& q, const View& k,
                        const View& v, const View& probs, const AttnOptions& o);
void attention_forward_qkv(View out, View probs, const View& qkv, std::size_t n_kv_heads,
                           const AttnOptions& o);
void attention_backward_qkv(View dqkv, const View& dout, const View& qkv, const View& probs,
                            std::size_t n_kv_heads, const AttnOptions& o);
float softmax_cross_entropy_forward(View losses, View probs, const View& logits, const Ids& targets,
                                    std::int32_t ignore);
void softmax_cross_entropy_backward(View dlogits, const View& probs, const Ids& targets, float dloss,
                                    std::int32_t ignore);
float softmax_cross_entropy_fused(View logits, View losses, const Ids& targets, float dloss,
                                  std::int32_t ignore);
void logprob_gather_forward(View logprobs, View lse, View entropy, const View& logits, const Ids& ids,
                            std::int32_t ignore);
void logprob_gather_backward(View dlogits, const View& dlogprobs, const View& logits, const Ids& ids,
                             const View& lse, std::int32_t ignore);
void adamw_update(View params, const View& grads, View m, View v, std::int64_t step, double lr, double beta1,
                  double beta2, double eps, double weight_decay);
double global_grad_norm(const std::vector<View>& grads);
double clip_grad_norm(const std::vector<View>& grads, double max_norm);
float mse_forward(const View& pred, const View& target);
void mse_backward(View dpred, const View& pred, const View& target, float dloss);
float bce_with_logits_forward(const View& logits, const View& labels);
void bce_with_logits_backward(View dlogits, const View& logits, const View& labels, float dloss);
float bradley_terry_forward(const View& chosen, const View& rejected);
void bradley_terry_backward(View dchosen, View drejected, const View& chosen, const View& rejected,
                            float dloss);

}  // namespace ref
