#pragma once
// CausalLM: a decoder-only transformer language model (GPT-2 or Llama, chosen by the Arch policy)
// with explicit forward/backward passes over p4lm's ops, llm.c style.
//
//   p4lm::LlamaLM lm(config);                     // = CausalLM<backend::cpu, arch::Llama>
//   lm.init_random(rng);
//   float loss = lm.forward({.ids = ids, .targets = targets});   // mean CE over counted targets
//   lm.zero_grad(); lm.backward();                // gradients in p.grad for p in lm.parameters()
//
// Memory: all parameters live in ONE allocation and all gradients in another, each parameter a
// named view into them (parameters()). Activations live in one workspace sized for the largest
// (batch, sequence) seen so far and reused: a training step allocates nothing.
//
// Sequence layout of one forward pass (what P4LM needs): each of the B sequences is
//   [ P prefix vectors (soft tokens from CF adapters, width d_model) | T text tokens (right-padded) ]
// so S = P + T positions. Prefix rows replace the token-embedding lookup (GPT-2 still adds the
// position embedding, Llama rotates them with RoPE: they are ordinary positions). targets (B, S)
// give the token each position predicts (ops::ignore_index_default = -100 for none); lengths (B)
// give the valid text tokens of each sequence, positions past P + lengths[b] are padding (never
// attended to, never in the loss). backward() fills prefix_grad() (B, P, C) with d loss / d prefix.
//
// Heads: forward() computes logits (B, S, V) and, given targets, the mean cross-entropy, turning the
// logits buffer into its gradient in place (llm.c's trick: no second (B, S, V) buffer). For PPO,
// forward_logprobs() keeps the logits and gives log p(target) per position (and the entropy);
// backward_logprobs() takes d objective / d logprobs plus, optionally, d objective / d hidden() for a
// value head on the final hidden states (after the final norm).
//
// Decoding: forward_cached() runs new positions of a batch against a KVCache (generate.hpp).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/backend/cpu/skinny_gemm.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/model/arch.hpp"
#include "p4lm/model/kv_cache.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/attention.hpp"
#include "p4lm/ops/embedding.hpp"
#include "p4lm/ops/gelu.hpp"
#include "p4lm/ops/layernorm.hpp"
#include "p4lm/ops/logprob_gather.hpp"
#include "p4lm/ops/matmul.hpp"
#include "p4lm/ops/residual.hpp"
#include "p4lm/ops/rmsnorm.hpp"
#include "p4lm/ops/rope.hpp"
#include "p4lm/ops/softmax_cross_entropy.hpp"
#include "p4lm/ops/swiglu.hpp"

namespace p4lm {

// Attention masks as policies: a causal LM attends to the past only; reward encoders see everything.
namespace attention {
struct Causal {
  static constexpr bool causal = true;
};
struct Bidirectional {
  static constexpr bool causal = false;
};
}  // namespace attention

// The inputs of one forward pass. Only ids is required (it may have T = 0 when a prefix is given).
template <Scalar T = float>
struct LMInput {
  TensorView<backend::cpu, std::int32_t> ids{};      // (B, T) text token ids, right-padded
  TensorView<backend::cpu, T> prefix{};              // (B, P, C) soft tokens before the text, or {}
  TensorView<backend::cpu, std::int32_t> targets{};  // (B, P + T) token each position predicts, or {}
  TensorView<backend::cpu, std::int32_t> lengths{};  // (B) valid text tokens per sequence, or {} (= T)
};

template <Backend B, Architecture Arch, class Mask = attention::Causal, Scalar T = float>
class CausalLM {
  static_assert(std::is_same_v<B, backend::cpu>,
                "p4lm::CausalLM: only backend::cpu is implemented; the CUDA model is future work");

 public:
  using backend_type = B;
  using arch_type = Arch;
  using value_type = T;
  using View = TensorView<backend::cpu, T>;
  using Ids = TensorView<backend::cpu, std::int32_t>;
  static constexpr bool causal = Mask::causal;

  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {
    config_.validate();
    if (config_.arch != Arch::name)
      fail<InvalidArgument>("CausalLM<", Arch::name, ">: config is for arch \"", config_.arch, "\"");
    const auto specs = Arch::parameters(config_);
    std::size_t total = 0;
    for (const auto& s : specs) total += padded(s.shape.numel());
    values_ = CpuTensor<T>(Shape{total});
    grads_ = CpuTensor<T>(Shape{total});
    std::size_t offset = 0;
    for (const auto& s : specs) {
      params_.push_back({s.name, View(values_.data() + offset, s.shape),
                         View(grads_.data() + offset, s.shape), true, s.decay});
      offset += padded(s.shape.numel());
    }
    bind_weights();
  }

  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;
  CausalLM(CausalLM&&) noexcept = default;  // the storages move with their buffers: views stay valid
  CausalLM& operator=(CausalLM&&) noexcept = default;

  // A deep copy of the parameters, trainable flags and config, with fresh gradients and workspace:
  // the frozen reference model of PPO's KL penalty. Independent of this model afterwards.
  CausalLM clone() const {
    CausalLM copy(config_);
    p4lm::copy(copy.values_.view(), values_.view());
    for (std::size_t i = 0; i < params_.size(); ++i) copy.params_[i].trainable = params_[i].trainable;
    return copy;
  }

  const ModelConfig& config() const noexcept { return config_; }

  // ---- parameters ----
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  Parameter<T>& parameter(std::string_view name) { return params_[index_of(name)]; }
  const Parameter<T>& parameter(std::string_view name) const { return params_[index_of(name)]; }
  bool has_parameter(std::string_view name) const noexcept {
    return std::any_of(params_.begin(), params_.end(), [&](const auto& p) { return p.name == name; });
  }
  std::size_t num_parameters() const noexcept {
    std::size_t n = 0;
    for (const auto& p : params_) n += p.value.numel();
    return n;
  }
  // The whole parameter / gradient allocations (padding between tensors included, always zero).
  View all_values() noexcept { return values_.view(); }
  View all_grads() noexcept { return grads_.view(); }

  // Freezing by name: glob (`*`, `?`) or std::regex; returns how many parameters matched.
  std::size_t freeze(std::string_view glob) { return set_trainable<T>(params_, glob, false); }
  std::size_t unfreeze(std::string_view glob) { return set_trainable<T>(params_, glob, true); }
  std::size_t freeze(const std::regex& re) { return set_trainable<T>(params_, re, false); }
  std::size_t unfreeze(const std::regex& re) { return set_trainable<T>(params_, re, true); }

  void zero_grad() { grads_.zero(); }

  // GPT-2's initialisation (also used for Llama): matrices N(0, std), the projections into the
  // residual stream N(0, std / sqrt(2 L)), biases 0, norm gains 1.
  void init_random(Rng& rng, double std = 0.02) {
    const double proj_std = std / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
    for (auto& p : params_) {
      auto v = p.value.span();
      if (p.value.rank() == 1) {
        const bool gain = p.name.find("norm") != std::string::npos || p.name.find("ln_") != std::string::npos;
        std::fill(v.begin(), v.end(), gain && p.name.ends_with("weight") ? T(1) : T(0));
        continue;
      }
      const bool proj =
          p.name.ends_with("c_proj.weight") || p.name.ends_with("wo.weight") || p.name.ends_with("w2.weight");
      const double s = proj ? proj_std : std;
      for (auto& x : v) x = static_cast<T>(s * rng.normal());
    }
  }

  // ---- training forward / backward ----

  // Runs the model; with targets returns the mean cross-entropy over the counted targets (0 when
  // none count) and prepares backward(); without, returns 0 and keeps logits().
  T forward(const LMInput<T>& in) {
    trunk(in);
    head();
    if (!ops::detail::given(in.targets)) {
      loss_ready_ = false;
      logits_valid_ = true;
      return T(0);
    }
    prepare_targets(in.targets);
    loss_ = ops::softmax_cross_entropy_fused(logits_, losses_, targets_, T(1));
    loss_ready_ = true;
    logits_valid_ = false;  // now d loss / d logits
    return loss_;
  }

  // Accumulates d(mean loss)/d parameter into the gradients of trainable parameters and writes
  // prefix_grad() (overwritten, not accumulated). Call after forward() with targets.
  void backward() {
    if (!loss_ready_) fail<InvalidArgument>("CausalLM::backward: call forward() with targets first");
    backward_from_dlogits(logits_, View{});
    loss_ready_ = false;
  }

  // log p(targets[b, s]) per position into logprobs (B, S) (0 where ignored or padded), entropy of
  // each position's distribution into entropy (B, S) if given. Keeps logits() for backward_logprobs.
  void forward_logprobs(const LMInput<T>& in, View logprobs, View entropy = {}) {
    if (!ops::detail::given(in.targets))
      fail<InvalidArgument>("CausalLM::forward_logprobs: targets are required");
    trunk(in);
    head();
    prepare_targets(in.targets);
    expect_shape("CausalLM::forward_logprobs: logprobs", logprobs.shape(), Shape{B_, S_});
    if (ops::detail::given(entropy))
      expect_shape("CausalLM::forward_logprobs: entropy", entropy.shape(), Shape{B_, S_});
    ops::logprob_gather_forward(logprobs, lse_, entropy, logits_, targets_);
    logits_valid_ = true;
    loss_ready_ = false;
    logprobs_ready_ = true;
  }

  // Backpropagates d objective / d logprobs (B, S) and, if given, d objective / d hidden (B, S, C)
  // (a value head on hidden()). Accumulates parameter gradients, overwrites prefix_grad().
  void backward_logprobs(const View& dlogprobs, const View& dhidden = {}) {
    if (!logprobs_ready_) fail<InvalidArgument>("CausalLM::backward_logprobs: call forward_logprobs() first");
    expect_shape("CausalLM::backward_logprobs: dlogprobs", dlogprobs.shape(), Shape{B_, S_});
    if (ops::detail::given(dhidden))
      expect_shape("CausalLM::backward_logprobs: dhidden", dhidden.shape(), Shape{B_, S_, C()});
    dlogits_.resize(logits_.shape());
    dlogits_.zero();
    ops::logprob_gather_backward(dlogits_.view(), dlogprobs, logits_, targets_, lse_);
    backward_from_dlogits(dlogits_.view(), dhidden);
    logprobs_ready_ = false;
  }

  // Logits (B, S, V) of the last forward() without targets or forward_logprobs().
  View logits() const {
    if (!logits_valid_)
      fail<InvalidArgument>("CausalLM::logits: the last forward() turned them into gradients");
    return logits_;
  }
  // Logits of each sequence's last valid position (B, V), from the same passes as logits().
  View last_logits() {
    const View all = logits();
    last_.resize(Shape{B_, V()});
    for (std::size_t b = 0; b < B_; ++b) {
      const std::size_t s = P_ + seq_len(b) - 1;
      std::copy(all.data() + (b * S_ + s) * V(), all.data() + (b * S_ + s + 1) * V(), last_.data() + b * V());
    }
    return last_.view();
  }
  // Final hidden states after the final norm (B, S, C): input of the LM head and of value heads.
  View hidden() const { return lnf_; }
  // Per-position cross-entropy (B, S) of the last forward() with targets.
  View losses() const { return losses_; }
  // d loss / d prefix (B, P, C) from the last backward; empty when no prefix was given.
  View prefix_grad() const { return dprefix_.view(); }
  std::size_t batch() const noexcept { return B_; }
  std::size_t seq() const noexcept { return S_; }

  // ---- incremental decoding ----

  // Appends new positions to every sequence of `cache` and returns the logits (B, V) of each
  // sequence's last new position. ids (B, Tq) right-padded, new_lengths[b] valid tokens of row b (0:
  // the sequence does not advance); prefix (B, P, C) or {} goes before the tokens (P positions, every
  // sequence). Rows with nothing new return stale logits.
  View forward_cached(KVCache<T>& cache, const Ids& ids, std::span<const std::int32_t> new_lengths,
                      const View& prefix = {}) {
    static_assert(causal, "forward_cached needs a causal mask");
    if (ids.rank() != 2)
      fail<ShapeError>("CausalLM::forward_cached: ids: expected (B, T), got ", ids.shape());
    const std::size_t Bn = ids.dim(0), Tq = ids.dim(1), P = ops::detail::given(prefix) ? prefix.dim(1) : 0;
    const std::size_t Sq = P + Tq, N = Bn * Sq;
    if (Bn != cache.batch())
      fail<ShapeError>("CausalLM::forward_cached: batch ", Bn, " but the cache holds ", cache.batch());
    if (new_lengths.size() != Bn)
      fail<ShapeError>("CausalLM::forward_cached: ", new_lengths.size(), " lengths for a batch of ", Bn);
    if (P) expect_shape("CausalLM::forward_cached: prefix", prefix.shape(), Shape{Bn, P, C()});
    if (Sq == 0) fail<InvalidArgument>("CausalLM::forward_cached: nothing to run");
    ops::detail::check_ids("CausalLM::forward_cached: ids", ids, V());
    auto& lens = cache.lengths();
    std::size_t max_pos = 0;
    for (std::size_t b = 0; b < Bn; ++b) {
      if (new_lengths[b] < 0 || static_cast<std::size_t>(new_lengths[b]) > Tq)
        fail<InvalidArgument>("CausalLM::forward_cached: new length ", new_lengths[b], " of row ", b,
                              " outside [0, ", Tq, "]");
      max_pos = std::max(max_pos, static_cast<std::size_t>(lens[b]) + Sq);
    }
    if (max_pos > cache.capacity())
      fail<InvalidArgument>("CausalLM::forward_cached: ", max_pos, " positions exceed the cache capacity ",
                            cache.capacity());
    if (Arch::learned_positions && max_pos > config_.max_seq)
      fail<InvalidArgument>("CausalLM::forward_cached: ", max_pos, " positions exceed max_seq ",
                            config_.max_seq);

    const std::size_t Cd = C(), D = config_.head_dim(), H = config_.n_heads, KV = config_.kv_heads(),
                      F = config_.d_ff;
    const std::size_t cap = cache.capacity();
    // Workspace (grows only).
    dec_.resize(Shape{N * (7 * Cd + 2 * KV * D + 2 * F) + Bn * H * Sq * cap + 2 * N + Bn * Cd + Bn * V()});
    T* w = dec_.data();
    auto take = [&](Shape s) {
      View v(w, s);
      w += s.numel();
      return v;
    };
    View x = take({Bn, Sq, Cd}), ln = take({Bn, Sq, Cd}), q = take({Bn, Sq, H, D}), k = take({Bn, Sq, KV, D}),
         v = take({Bn, Sq, KV, D}), att = take({Bn, Sq, H, D}), f1 = take({Bn, Sq, F}),
         f2 = take({Bn, Sq, F}), qkv = take({Bn, Sq, 3 * Cd}), probs = take({Bn, H, Sq, cap}),
         mean = take({N}), rstd = take({N}), xl = take({Bn, Cd}), out = take({Bn, V()});
    dec_pos_.resize(Shape{Bn, Sq});
    dec_keys_.resize(Shape{Bn});
    for (std::size_t b = 0; b < Bn; ++b)
      for (std::size_t s = 0; s < Sq; ++s)
        dec_pos_.data()[b * Sq + s] = lens[b] + static_cast<std::int32_t>(s);

    // Embeddings.
    const View wte = embed_weight();
    for (std::size_t b = 0; b < Bn; ++b)
      for (std::size_t s = 0; s < Sq; ++s) {
        T* row = x.data() + (b * Sq + s) * Cd;
        const T* src = s < P ? prefix.data() + (b * P + s) * Cd
                             : wte.data() + static_cast<std::size_t>(ids.data()[b * Tq + (s - P)]) * Cd;
        std::copy(src, src + Cd, row);
        if constexpr (Arch::learned_positions) {
          const T* pe = w_.wpe.data() + static_cast<std::size_t>(dec_pos_.data()[b * Sq + s]) * Cd;
          for (std::size_t c = 0; c < Cd; ++c) row[c] += pe[c];
        }
      }

    bool same_start = true;
    for (std::size_t b = 1; b < Bn; ++b) same_start = same_start && lens[b] == lens[0];
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const Layer& L = layers_[l];
      norm(ln, mean, rstd, x, L.norm1_w, L.norm1_b);
      if constexpr (Arch::gelu_mlp) {  // GPT-2: one fused projection, then split into q, k, v
        linear(qkv, ln, L.wqkv, L.bqkv);
        for (std::size_t r = 0; r < N; ++r) {
          const T* src = qkv.data() + r * 3 * Cd;
          std::copy(src, src + Cd, q.data() + r * Cd);
          std::copy(src + Cd, src + 2 * Cd, k.data() + r * Cd);
          std::copy(src + 2 * Cd, src + 3 * Cd, v.data() + r * Cd);
        }
      } else {
        linears(ln, {{q.reshaped({Bn, Sq, H * D}), L.wq},
                     {k.reshaped({Bn, Sq, KV * D}), L.wk},
                     {v.reshaped({Bn, Sq, KV * D}), L.wv}});
        ops::rope_forward(q, q, dec_pos_.view(), config_.rope_theta);
        ops::rope_forward(k, k, dec_pos_.view(), config_.rope_theta);
      }
      View kc = cache.keys(l), vc = cache.values(l);
      const std::size_t row = KV * D;
      for (std::size_t b = 0; b < Bn; ++b)
        for (std::size_t s = 0; s < Sq; ++s) {
          const std::size_t dst = (b * cap + static_cast<std::size_t>(lens[b]) + s) * row,
                            src = (b * Sq + s) * row;
          std::copy(k.data() + src, k.data() + src + row, kc.data() + dst);
          std::copy(v.data() + src, v.data() + src + row, vc.data() + dst);
        }
      // Attention over the cache. One batched call when every sequence starts at the same position
      // (prefill) or runs a single query (decode); otherwise one call per sequence.
      ops::AttentionOptions<backend::cpu> opt;
      if (Sq == 1 || same_start) {
        for (std::size_t b = 0; b < Bn; ++b)
          dec_keys_.data()[b] = lens[b] + static_cast<std::int32_t>(P) + new_lengths[b];
        opt.causal = Sq > 1;
        opt.query_offset = Sq > 1 ? lens[0] : -1;
        opt.key_lengths = dec_keys_.view();
        ops::attention_forward(att, probs, q, kc, vc, opt);
      } else {
        for (std::size_t b = 0; b < Bn; ++b) {
          dec_keys_.data()[b] = lens[b] + static_cast<std::int32_t>(P) + new_lengths[b];
          ops::AttentionOptions<backend::cpu> one;
          one.causal = true;
          one.query_offset = lens[b];
          one.key_lengths = Ids(dec_keys_.data() + b, Shape{1});
          auto sub = [](View t, std::size_t i) { return t.rows(i, i + 1); };
          ops::attention_forward(sub(att, b), sub(probs, b), sub(q, b), sub(kc, b), sub(vc, b), one);
        }
      }
      linear(ln, att.reshaped({Bn, Sq, H * D}), L.wo, L.bo);
      ops::residual_forward(x, x, ln);
      norm(ln, mean, rstd, x, L.norm2_w, L.norm2_b);
      if constexpr (Arch::gelu_mlp) {
        linear(f1, ln, L.w1, L.b1);
        ops::gelu_forward(f2, f1);
        linear(ln, f2, L.w2, L.b2);
      } else {
        linears(ln, {{f1, L.w1}, {f2, L.w3}});
        ops::swiglu_forward(f1, f1, f2);
        linear(ln, f1, L.w2, View{});
      }
      ops::residual_forward(x, x, ln);
    }
    // Final norm and head on each sequence's last new position only.
    for (std::size_t b = 0; b < Bn; ++b) {
      const std::size_t n = P + static_cast<std::size_t>(new_lengths[b]), s = n ? n - 1 : 0;
      std::copy(x.data() + (b * Sq + s) * Cd, x.data() + (b * Sq + s + 1) * Cd, xl.data() + b * Cd);
    }
    View xn = ln.reshaped({N, Cd}).rows(0, Bn);
    norm(xn, mean.rows(0, Bn), rstd.rows(0, Bn), xl, w_.normf_w, w_.normf_b);
    linear(out, xn, head_weight(), View{});
    for (std::size_t b = 0; b < Bn; ++b)
      if (new_lengths[b] > 0 || P > 0) lens[b] += static_cast<std::int32_t>(P) + new_lengths[b];
    return out;
  }

 private:
  struct Layer {
    View norm1_w, norm1_b, wqkv, bqkv, wq, wk, wv, wo, bo, norm2_w, norm2_b, w1, b1, w2, b2, w3;
    Parameter<T>*pnorm1_w = nullptr, *pnorm1_b = nullptr, *pwqkv = nullptr, *pbqkv = nullptr, *pwq = nullptr,
    *pwk = nullptr, *pwv = nullptr, *pwo = nullptr, *pbo = nullptr, *pnorm2_w = nullptr, *pnorm2_b = nullptr,
    *pw1 = nullptr, *pb1 = nullptr, *pw2 = nullptr, *pb2 = nullptr, *pw3 = nullptr;
  };
  struct Globals {
    View wte, wpe, normf_w, normf_b, head;
    Parameter<T>*pwte = nullptr, *pwpe = nullptr, *pnormf_w = nullptr, *pnormf_b = nullptr, *phead = nullptr;
  };
  // Activations of one layer, cached for backward.
  struct LayerActs {
    View ln1, ln1_mean, ln1_rstd, qkv, q, k, v, probs, att, res2, ln2, ln2_mean, ln2_rstd, f1, f2, fg, res3;
  };

  static constexpr std::size_t padded(std::size_t n) { return (n + 15) / 16 * 16; }  // 64-byte aligned views

  std::size_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].name == name) return i;
    fail<InvalidArgument>("CausalLM<", Arch::name, ">: no parameter named '", name, "'");
  }

  std::size_t C() const noexcept { return config_.d_model; }
  std::size_t V() const noexcept { return config_.vocab_size; }
  View embed_weight() const { return w_.wte; }
  View head_weight() const { return w_.head; }
  Parameter<T>* head_param() const { return w_.phead; }

  void bind_weights() {
    auto p = [&](const std::string& name) { return &params_[index_of(name)]; };
    layers_.assign(config_.n_layers, Layer{});
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      Layer& L = layers_[l];
      auto n = [&](const char* what) { return p(Arch::layer(l, what)); };
      if constexpr (Arch::gelu_mlp) {
        L.pnorm1_w = n("ln_1.weight"), L.pnorm1_b = n("ln_1.bias");
        L.pwqkv = n("attn.c_attn.weight"), L.pbqkv = n("attn.c_attn.bias");
        L.pwo = n("attn.c_proj.weight"), L.pbo = n("attn.c_proj.bias");
        L.pnorm2_w = n("ln_2.weight"), L.pnorm2_b = n("ln_2.bias");
        L.pw1 = n("mlp.c_fc.weight"), L.pb1 = n("mlp.c_fc.bias");
        L.pw2 = n("mlp.c_proj.weight"), L.pb2 = n("mlp.c_proj.bias");
      } else {
        L.pnorm1_w = n("attention_norm.weight");
        L.pwq = n("attention.wq.weight"), L.pwk = n("attention.wk.weight"), L.pwv = n("attention.wv.weight");
        L.pwo = n("attention.wo.weight");
        L.pnorm2_w = n("ffn_norm.weight");
        L.pw1 = n("feed_forward.w1.weight"), L.pw2 = n("feed_forward.w2.weight"),
        L.pw3 = n("feed_forward.w3.weight");
      }
      auto val = [](Parameter<T>* q) { return q ? q->value : View{}; };
      L.norm1_w = val(L.pnorm1_w), L.norm1_b = val(L.pnorm1_b), L.wqkv = val(L.pwqkv), L.bqkv = val(L.pbqkv);
      L.wq = val(L.pwq), L.wk = val(L.pwk), L.wv = val(L.pwv), L.wo = val(L.pwo), L.bo = val(L.pbo);
      L.norm2_w = val(L.pnorm2_w), L.norm2_b = val(L.pnorm2_b), L.w1 = val(L.pw1), L.b1 = val(L.pb1);
      L.w2 = val(L.pw2), L.b2 = val(L.pb2), L.w3 = val(L.pw3);
    }
    if constexpr (Arch::gelu_mlp) {
      w_.pwte = p("wte.weight"), w_.pwpe = p("wpe.weight"), w_.pnormf_w = p("ln_f.weight"),
      w_.pnormf_b = p("ln_f.bias");
      w_.phead = w_.pwte;
    } else {
      w_.pwte = p("tok_embeddings.weight"), w_.pnormf_w = p("norm.weight");
      w_.phead = config_.tied_head ? w_.pwte : p("output.weight");
    }
    w_.wte = w_.pwte->value, w_.normf_w = w_.pnormf_w->value, w_.head = w_.phead->value;
    if (w_.pwpe) w_.wpe = w_.pwpe->value;
    if (w_.pnormf_b) w_.normf_b = w_.pnormf_b->value;
  }

  // Decoding products: out = in · Wᵀ + b for each (out, W, b) that reads the same input. A few rows
  // (one per sequence of a decoding step) go to skinny_gemm_nt, which streams W once with the OpenMP
  // team and never hands off to OpenBLAS's threads; prefill-sized inputs go to GEMM.
  struct LinearOut {
    View out;
    View weight;
    View bias{};
  };
  static constexpr std::size_t skinny_max_rows = 32;
  static void linears(const View& in, std::initializer_list<LinearOut> list) {
    const std::span<const LinearOut> outs(list.begin(), list.size());
    const std::size_t rows = in.shape().rows(), K = in.shape().last();
    if (rows > skinny_max_rows) {
      for (const LinearOut& o : outs) ops::matmul_forward(o.out, in, o.weight, o.bias);
      return;
    }
    std::array<backend::cpu_blas::SkinnyProduct<T>, 3> products;
    std::size_t count = 0;
    for (LinearOut o : outs) {  // a copy: View::data() of a const view is const
      const std::size_t M = o.weight.dim(0);
      expect_shape("CausalLM::linear: weight", o.weight.shape(), Shape{M, K});
      expect_shape("CausalLM::linear: out", o.out.shape(), ops::detail::with_last(in.shape(), M));
      if (ops::detail::given(o.bias)) expect_shape("CausalLM::linear: bias", o.bias.shape(), Shape{M});
      auto& p = products.at(count++);
      p.w = o.weight.data(), p.m = M, p.out = o.out.data(), p.ldo = M;
      p.bias = ops::detail::given(o.bias) ? o.bias.data() : nullptr;
    }
    backend::cpu_blas::skinny_gemm_nt<T>(
        in.data(), rows, K, K, std::span<const backend::cpu_blas::SkinnyProduct<T>>(products.data(), count));
  }
  static void linear(View out, const View& in, const View& weight, const View& bias) {
    linears(in, {{out, weight, bias}});
  }

  void norm(View out, View mean, View rstd, const View& x, const View& w, const View& b) const {
    if constexpr (Arch::layer_norm)
      ops::layernorm_forward(out, mean, rstd, x, w, b, T(config_.norm_eps));
    else
      ops::rmsnorm_forward(out, rstd, x, w, T(config_.norm_eps));
  }

  std::size_t seq_len(std::size_t b) const { return lengths_.empty() ? T_ : lengths_[b]; }

  // Sizes the workspace for (B, S) and lays out every activation view. Allocates only when growing.
  void layout(std::size_t Bn, std::size_t P, std::size_t Tn) {
    if (Bn == B_ && P == P_ && Tn == T_ && !acts_.empty()) return;
    B_ = Bn, P_ = P, T_ = Tn, S_ = P + Tn;
    const std::size_t N = B_ * S_, Cd = C(), D = config_.head_dim(), H = config_.n_heads,
                      KV = config_.kv_heads();
    const std::size_t F = config_.d_ff;
    // Two passes: count, then assign.
    for (int pass = 0; pass < 2; ++pass) {
      T* base = pass ? work_.data() : nullptr;
      std::size_t off = 0;
      auto take = [&](Shape s) {
        View v(base ? base + off : nullptr, s);
        off += padded(s.numel());
        return v;
      };
      x0_ = take({B_, S_, Cd});
      acts_.assign(config_.n_layers, LayerActs{});
      for (auto& a : acts_) {
        a.ln1 = take({B_, S_, Cd});
        a.ln1_mean = Arch::layer_norm ? take({N}) : View{};
        a.ln1_rstd = take({N});
        if constexpr (Arch::gelu_mlp) {
          a.qkv = take({B_, S_, 3 * Cd});
        } else {
          a.q = take({B_, S_, H, D});
          a.k = take({B_, S_, KV, D});
          a.v = take({B_, S_, KV, D});
        }
        a.probs = take({B_, H, S_, S_});
        a.att = take({B_, S_, H, D});
        a.res2 = take({B_, S_, Cd});
        a.ln2 = take({B_, S_, Cd});
        a.ln2_mean = Arch::layer_norm ? take({N}) : View{};
        a.ln2_rstd = take({N});
        a.f1 = take({B_, S_, F});
        a.f2 = Arch::gelu_mlp ? View{} : take({B_, S_, F});
        a.fg = take({B_, S_, F});
        a.res3 = take({B_, S_, Cd});
      }
      lnf_ = take({B_, S_, Cd});
      lnf_mean_ = take({N});
      lnf_rstd_ = take({N});
      logits_ = take({B_, S_, V()});
      losses_ = take({B_, S_});
      lse_ = take({B_, S_});
      if (!pass) work_.resize(Shape{off});
    }
    targets_t_.resize(Shape{B_, S_});
    targets_ = targets_t_.view();
    positions_.resize(Shape{S_});
    for (std::size_t s = 0; s < S_; ++s) positions_.data()[s] = static_cast<std::int32_t>(s);
    key_lengths_.resize(Shape{B_});
  }

  void trunk(const LMInput<T>& in) {
    if (in.ids.rank() != 2) fail<ShapeError>("CausalLM::forward: ids: expected (B, T), got ", in.ids.shape());
    const std::size_t Bn = in.ids.dim(0), Tn = in.ids.dim(1);
    const bool has_prefix = ops::detail::given(in.prefix);
    if (has_prefix && (in.prefix.rank() != 3 || in.prefix.dim(0) != Bn || in.prefix.dim(2) != C()))
      fail<ShapeError>("CausalLM::forward: prefix: expected (", Bn, ", P, ", C(), "), got ",
                       in.prefix.shape());
    const std::size_t P = has_prefix ? in.prefix.dim(1) : 0;
    if (P + Tn == 0) fail<InvalidArgument>("CausalLM::forward: empty sequences");
    if (Arch::learned_positions && P + Tn > config_.max_seq)
      fail<InvalidArgument>("CausalLM::forward: ", P + Tn, " positions exceed max_seq ", config_.max_seq);
    ops::detail::check_ids("CausalLM::forward: ids", in.ids, V());
    lengths_.clear();
    if (ops::detail::given(in.lengths)) {
      expect_shape("CausalLM::forward: lengths", in.lengths.shape(), Shape{Bn});
      for (std::size_t b = 0; b < Bn; ++b) {
        const auto len = in.lengths.data()[b];
        if (len < 0 || static_cast<std::size_t>(len) > Tn || (len == 0 && P == 0))
          fail<InvalidArgument>("CausalLM::forward: lengths[", b, "] = ", len, " outside [", P ? 0 : 1, ", ",
                                Tn, "]");
        lengths_.push_back(static_cast<std::size_t>(len));
      }
    }
    layout(Bn, P, Tn);
    has_prefix_ = has_prefix;
    const std::size_t Cd = C();

    // Embeddings: prefix rows, then token rows; GPT-2 adds the position embedding to both.
    for (std::size_t b = 0; b < B_; ++b) {
      View xb = x0_[b];  // (S, C)
      for (std::size_t s = 0; s < P_; ++s) {
        const T* src = in.prefix.data() + (b * P_ + s) * Cd;
        T* dst = xb.data() + s * Cd;
        std::copy(src, src + Cd, dst);
        if constexpr (Arch::learned_positions) {
          const T* pe = w_.wpe.data() + s * Cd;
          for (std::size_t c = 0; c < Cd; ++c) dst[c] += pe[c];
        }
      }
      if (T_ == 0) continue;
      const Ids ids_b = in.ids[b];
      if constexpr (Arch::learned_positions)
        ops::embedding_forward(xb.rows(P_, S_), ids_b, w_.wte, w_.wpe.rows(P_, config_.max_seq));
      else
        ops::embedding_forward(xb.rows(P_, S_), ids_b, w_.wte);
    }
    ids_.resize(in.ids.shape());
    std::copy(in.ids.data(), in.ids.data() + in.ids.numel(), ids_.data());

    ops::AttentionOptions<backend::cpu> opt;
    opt.causal = causal;
    if (!lengths_.empty()) {
      for (std::size_t b = 0; b < B_; ++b)
        key_lengths_.data()[b] = static_cast<std::int32_t>(P_ + lengths_[b]);
      opt.key_lengths = key_lengths_.view();
    }
    attn_opt_ = opt;

    const std::size_t D = config_.head_dim(), H = config_.n_heads, KV = config_.kv_heads();
    View x = x0_;
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const Layer& L = layers_[l];
      LayerActs& a = acts_[l];
      norm(a.ln1, a.ln1_mean, a.ln1_rstd, x, L.norm1_w, L.norm1_b);
      if constexpr (Arch::gelu_mlp) {
        ops::matmul_forward(a.qkv, a.ln1, L.wqkv, L.bqkv);
        ops::attention_forward_qkv(a.att, a.probs, a.qkv, KV, attn_opt_);
      } else {
        ops::matmul_forward(a.q.reshaped({B_, S_, H * D}), a.ln1, L.wq);
        ops::matmul_forward(a.k.reshaped({B_, S_, KV * D}), a.ln1, L.wk);
        ops::matmul_forward(a.v.reshaped({B_, S_, KV * D}), a.ln1, L.wv);
        ops::rope_forward(a.q, a.q, positions_.view(), config_.rope_theta);
        ops::rope_forward(a.k, a.k, positions_.view(), config_.rope_theta);
        ops::attention_forward(a.att, a.probs, a.q, a.k, a.v, attn_opt_);
      }
      ops::matmul_forward(a.res2, a.att.reshaped({B_, S_, H * D}), L.wo, L.bo);
      ops::residual_forward(a.res2, a.res2, x);
      norm(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, L.norm2_w, L.norm2_b);
      if constexpr (Arch::gelu_mlp) {
        ops::matmul_forward(a.f1, a.ln2, L.w1, L.b1);
        ops::gelu_forward(a.fg, a.f1);
      } else {
        ops::matmul_forward(a.f1, a.ln2, L.w1);
        ops::matmul_forward(a.f2, a.ln2, L.w3);
        ops::swiglu_forward(a.fg, a.f1, a.f2);
      }
      ops::matmul_forward(a.res3, a.fg, L.w2, L.b2);
      ops::residual_forward(a.res3, a.res3, a.res2);
      x = a.res3;
    }
    norm(lnf_, lnf_mean_, lnf_rstd_, x, w_.normf_w, w_.normf_b);
  }

  void head() { ops::matmul_forward(logits_, lnf_, head_weight()); }

  // Targets with padded positions set to the ignore index.
  void prepare_targets(const Ids& targets) {
    expect_shape("CausalLM::forward: targets", targets.shape(), Shape{B_, S_});
    std::copy(targets.data(), targets.data() + targets.numel(), targets_t_.data());
    if (!lengths_.empty())
      for (std::size_t b = 0; b < B_; ++b)
        for (std::size_t s = P_ + lengths_[b]; s < S_; ++s)
          targets_t_.data()[b * S_ + s] = ops::ignore_index_default;
  }

  // Scratch gradient views for backward, laid out like the activations (one set reused by every layer).
  void layout_grads() {
    const std::size_t N = B_ * S_, Cd = C(), F = config_.d_ff, D = config_.head_dim(), H = config_.n_heads,
                      KV = config_.kv_heads();
    const std::size_t qkv = (H + 2 * KV) * D;
    gwork_.resize(Shape{padded(N * Cd) * 3 + padded(N * qkv) * 2 + padded(N * F) * 3 + padded(N * H * D)});
    T* w = gwork_.data();
    auto take = [&](Shape s) {
      View v(w, s);
      w += padded(s.numel());
      return v;
    };
    g_.dres = take({B_, S_, Cd});
    g_.dln = take({B_, S_, Cd});
    g_.dlnf = take({B_, S_, Cd});
    g_.datt = take({B_, S_, H, D});
    g_.dqkv = take({B_, S_, qkv});
    g_.dqkv_rot = take({B_, S_, qkv});
    g_.df1 = take({B_, S_, F});
    g_.df2 = take({B_, S_, F});
    g_.dfg = take({B_, S_, F});
  }

  static void zero(View v) { std::fill(v.data(), v.data() + v.numel(), T(0)); }

  static View grad_if(Parameter<T>* p) { return p && p->trainable ? p->grad : View{}; }

  void backward_from_dlogits(const View& dlogits, const View& dhidden) {
    layout_grads();
    const std::size_t Cd = C(), D = config_.head_dim(), H = config_.n_heads, KV = config_.kv_heads();
    // Head: dlnf = dlogits · W, dW += dlogitsᵀ · lnf.
    zero(g_.dlnf);
    ops::matmul_backward(g_.dlnf, grad_if(head_param()), View{}, dlogits, lnf_, head_weight());
    if (ops::detail::given(dhidden)) ops::residual_backward(g_.dlnf, View{}, dhidden);
    zero(g_.dres);
    View last = config_.n_layers ? acts_.back().res3 : x0_;
    norm_backward(g_.dres, w_.pnormf_w, w_.pnormf_b, g_.dlnf, last, lnf_mean_, lnf_rstd_);

    // Below layer l, is any gradient still needed (a trainable parameter or the prefix)?
    std::vector<bool> needed(config_.n_layers + 1, false);
    needed[0] = has_prefix_ || w_.pwte->trainable || (w_.pwpe && w_.pwpe->trainable);
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      needed[l + 1] = needed[l] || layer_trainable(l);
    }

    for (std::size_t li = config_.n_layers; li-- > 0;) {
      if (!needed[li + 1]) break;
      const Layer& L = layers_[li];
      LayerActs& a = acts_[li];
      const View x = li ? acts_[li - 1].res3 : x0_;
      // MLP: res3 = res2 + W2 · fg
      zero(g_.dfg);
      ops::matmul_backward(g_.dfg, grad_if(L.pw2), grad_if(L.pb2), g_.dres, a.fg, L.w2);
      zero(g_.df1);
      zero(g_.dln);
      if constexpr (Arch::gelu_mlp) {
        ops::gelu_backward(g_.df1, g_.dfg, a.f1);
        ops::matmul_backward(g_.dln, grad_if(L.pw1), grad_if(L.pb1), g_.df1, a.ln2, L.w1);
      } else {
        zero(g_.df2);
        ops::swiglu_backward(g_.df1, g_.df2, g_.dfg, a.f1, a.f2);
        ops::matmul_backward(g_.dln, grad_if(L.pw1), View{}, g_.df1, a.ln2, L.w1);
        ops::matmul_backward(g_.dln, grad_if(L.pw3), View{}, g_.df2, a.ln2, L.w3);
      }
      norm_backward(g_.dres, L.pnorm2_w, L.pnorm2_b, g_.dln, a.res2, a.ln2_mean, a.ln2_rstd);
      // Attention: res2 = x + Wo · att
      zero(g_.datt);
      ops::matmul_backward(g_.datt.reshaped({B_, S_, H * D}), grad_if(L.pwo), grad_if(L.pbo), g_.dres,
                           a.att.reshaped({B_, S_, H * D}), L.wo);
      zero(g_.dln);
      if constexpr (Arch::gelu_mlp) {
        View dqkv = g_.dqkv.reshaped({B_, S_, 3 * Cd});
        zero(dqkv);
        ops::attention_backward_qkv(dqkv, g_.datt, a.qkv, a.probs, KV, attn_opt_);
        ops::matmul_backward(g_.dln, grad_if(L.pwqkv), grad_if(L.pbqkv), dqkv, a.ln1, L.wqkv);
      } else {
        // dq, dk, dv (rotated), then un-rotate q and k.
        const std::size_t N = B_ * S_;
        View dq = View(g_.dqkv.data(), Shape{B_, S_, H, D});
        View dk = View(g_.dqkv.data() + N * H * D, Shape{B_, S_, KV, D});
        View dv = View(g_.dqkv.data() + N * (H + KV) * D, Shape{B_, S_, KV, D});
        View dq0 = View(g_.dqkv_rot.data(), Shape{B_, S_, H, D});
        View dk0 = View(g_.dqkv_rot.data() + N * H * D, Shape{B_, S_, KV, D});
        zero(g_.dqkv);
        zero(g_.dqkv_rot);
        ops::attention_backward(dq, dk, dv, g_.datt, a.q, a.k, a.v, a.probs, attn_opt_);
        ops::rope_backward(dq0, dq, positions_.view(), config_.rope_theta);
        ops::rope_backward(dk0, dk, positions_.view(), config_.rope_theta);
        ops::matmul_backward(g_.dln, grad_if(L.pwq), View{}, dq0.reshaped({B_, S_, H * D}), a.ln1, L.wq);
        ops::matmul_backward(g_.dln, grad_if(L.pwk), View{}, dk0.reshaped({B_, S_, KV * D}), a.ln1, L.wk);
        ops::matmul_backward(g_.dln, grad_if(L.pwv), View{}, dv.reshaped({B_, S_, KV * D}), a.ln1, L.wv);
      }
      norm_backward(g_.dres, L.pnorm1_w, L.pnorm1_b, g_.dln, x, a.ln1_mean, a.ln1_rstd);
    }

    // Embeddings: g_.dres is now d loss / d x0.
    dprefix_.resize(Shape{B_, P_, Cd});
    if (!needed[0]) return;
    for (std::size_t b = 0; b < B_; ++b) {
      const View db = g_.dres[b];  // (S, C)
      if (P_) std::copy(db.data(), db.data() + P_ * Cd, dprefix_.data() + b * P_ * Cd);
      if constexpr (Arch::learned_positions) {
        if (w_.pwpe->trainable)
          for (std::size_t s = 0; s < P_; ++s) {
            T* g = w_.pwpe->grad.data() + s * Cd;
            const T* d = db.data() + s * Cd;
            for (std::size_t c = 0; c < Cd; ++c) g[c] += d[c];
          }
      }
      if (T_ == 0) continue;
      const View dtext = db.rows(P_, S_);
      const Ids ids_b = ids_.view()[b];
      View dwpe{};
      if constexpr (Arch::learned_positions)
        if (w_.pwpe->trainable) dwpe = w_.pwpe->grad.rows(P_, config_.max_seq);
      ops::embedding_backward(grad_if(w_.pwte), dwpe, dtext, ids_b);
    }
  }

  bool layer_trainable(std::size_t l) const {
    const Layer& L = layers_[l];
    for (Parameter<T>* p : {L.pnorm1_w, L.pnorm1_b, L.pwqkv, L.pbqkv, L.pwq, L.pwk, L.pwv, L.pwo, L.pbo,
                            L.pnorm2_w, L.pnorm2_b, L.pw1, L.pb1, L.pw2, L.pb2, L.pw3})
      if (p && p->trainable) return true;
    return false;
  }

  // Norm backward into dx (accumulating); frozen gains/biases get their gradient in a throwaway buffer.
  void norm_backward(View dx, Parameter<T>* w, Parameter<T>* b, const View& dout, const View& x,
                     const View& mean, const View& rstd) {
    View dw = w->trainable ? w->grad : scratch_param(0, w->value.numel());
    if constexpr (Arch::layer_norm) {
      View dbias = b->trainable ? b->grad : scratch_param(1, b->value.numel());
      ops::layernorm_backward(dx, dw, dbias, dout, x, w->value, mean, rstd);
    } else {
      ops::rmsnorm_backward(dx, dw, dout, x, w->value, rstd);
    }
  }
  View scratch_param(std::size_t which, std::size_t n) {
    norm_scratch_.resize(Shape{2 * padded(n)});
    return View(norm_scratch_.data() + which * padded(n), Shape{n});
  }

  struct Grads {
    View dres, dln, dlnf, datt, dqkv, dqkv_rot, df1, df2, dfg;
  };

  ModelConfig config_;
  CpuTensor<T> values_, grads_;
  std::vector<Parameter<T>> params_;
  std::vector<Layer> layers_;
  Globals w_;

  // Training workspace.
  std::size_t B_ = 0, P_ = 0, T_ = 0, S_ = 0;
  CpuTensor<T> work_, gwork_, dlogits_, dprefix_, last_, norm_scratch_;
  CpuTensor<std::int32_t> ids_, targets_t_, positions_, key_lengths_;
  Ids targets_;
  std::vector<LayerActs> acts_;
  View x0_, lnf_, lnf_mean_, lnf_rstd_, logits_, losses_, lse_;
  Grads g_;
  std::vector<std::size_t> lengths_;
  ops::AttentionOptions<backend::cpu> attn_opt_;
  bool has_prefix_ = false, loss_ready_ = false, logits_valid_ = false, logprobs_ready_ = false;
  T loss_ = 0;

  // Decoding workspace.
  CpuTensor<T> dec_;
  CpuTensor<std::int32_t> dec_pos_, dec_keys_;
};

template <Scalar T = float>
using GPT2LM = CausalLM<backend::cpu, arch::GPT2, attention::Causal, T>;
template <Scalar T = float>
using LlamaLM = CausalLM<backend::cpu, arch::Llama, attention::Causal, T>;

}  // namespace p4lm
