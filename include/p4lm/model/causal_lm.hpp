#pragma once
// CausalLM: a decoder-only transformer language model (GPT-2 or Llama, chosen by the Arch policy),
// assembled from the modules of nn/: Embedding, then n_layers Blocks (norm, Attention<B, Mask>, norm,
// MLP), then the final norm and the LM head (a Linear, tied to the token embedding or its own).
//
//   p4lm::LlamaLM<> lm(config);                   // = CausalLM<backend::cpu, arch::Llama>
//   lm.init_random(rng);
//   float loss = lm.forward({.ids = ids, .targets = targets});   // mean CE over counted targets
//   lm.zero_grad(); lm.backward();                // gradients in p.grad for p in lm.parameters()
//
// The backend tag B selects where tensors live and which ops run: CausalLM<backend::cuda, Arch> is the
// same type on the GPU (compiled by nvcc, which sees the CUDA op overloads through ops/all_backends.hpp).
//
// Memory: all parameters live in ONE allocation and all gradients in another (nn::ParameterSet), each
// parameter a named view (parameters()); the modules point into it. Activations live in one workspace
// sized for the largest (batch, sequence) seen so far and reused: a training step allocates nothing.
//
// Sequence layout of one forward pass (what P4LM needs): each of the B sequences is
//   [ P prefix vectors (soft tokens from CF adapters, width d_model) | T text tokens (right-padded) ]
// so S = P + T positions. Prefix rows replace the token-embedding lookup (GPT-2 still adds the
// position embedding, Llama rotates them with RoPE: they are ordinary positions). targets (B, S)
// give the token each position predicts (ignore index -100 for none); lengths (B) give the valid text
// tokens of each sequence, positions past P + lengths[b] are padding (never attended to, never in the
// loss). backward() fills prefix_grad() (B, P, C) with d loss / d prefix.
//
// Heads: forward() computes logits (B, S, V) and, given targets, the mean cross-entropy, turning the
// logits buffer into its gradient in place (llm.c's trick: no second (B, S, V) buffer). For PPO,
// forward_logprobs() keeps the logits and gives log p(target) per position (and the entropy);
// backward_logprobs() takes d objective / d logprobs plus, optionally, d objective / d hidden() for a
// value head on the final hidden states (after the final norm).
//
// Decoding: forward_cached() runs new positions of a batch against a KVCache (generate.hpp) through
// the same Block body, with the streamed products of a decoding step.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/model/arch.hpp"
#include "p4lm/model/kv_cache.hpp"
#include "p4lm/nn/block.hpp"
#include "p4lm/nn/embedding.hpp"
#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/nn/workspace.hpp"

namespace p4lm {

// The inputs of one forward pass. Only ids is required (it may have T = 0 when a prefix is given).
template <Scalar T = float, Backend B = backend::cpu>
struct LMInput {
  TensorView<B, std::int32_t> ids{};      // (B, T) text token ids, right-padded
  TensorView<B, T> prefix{};              // (B, P, C) soft tokens before the text, or {}
  TensorView<B, std::int32_t> targets{};  // (B, P + T) token each position predicts, or {}
  TensorView<B, std::int32_t> lengths{};  // (B) valid text tokens per sequence, or {} (= T)
};

template <Backend B, Architecture Arch, AttentionMask Mask = attention::Causal, Scalar T = float>
class CausalLM {
 public:
  using backend_type = B;
  using arch_type = Arch;
  using value_type = T;
  using View = TensorView<B, T>;
  using Ids = TensorView<B, std::int32_t>;
  using Norm = std::conditional_t<Arch::layer_norm, nn::LayerNorm<B, T>, nn::RMSNorm<B, T>>;
  using Mlp = nn::MLP<B, std::conditional_t<Arch::gelu_mlp, nn::activation::Gelu, nn::activation::SwiGLU>, T>;
  using AttentionLayer = nn::Attention<B, Mask, T>;
  using BlockLayer = nn::Block<B, Norm, AttentionLayer, Mlp, T>;
  static constexpr bool causal = Mask::causal;
  static constexpr int ignore_index = -100;  // targets equal to this are not in the loss

  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {
    config_.validate();
    if (config_.arch != Arch::name)
      fail<InvalidArgument>("CausalLM<", Arch::name, ">: config is for arch \"", config_.arch, "\"");
    const auto specs = Arch::parameters(config_);
    params_ = nn::ParameterSet<B, T>(specs, std::string("CausalLM<") + Arch::name + ">");
    bind_modules();
  }

  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;
  CausalLM(CausalLM&&) noexcept = default;  // the storages move with their buffers: views stay valid
  CausalLM& operator=(CausalLM&&) noexcept = default;

  // A deep copy of the parameters, trainable flags and config, with fresh gradients and workspace:
  // the frozen reference model of PPO's KL penalty. Independent of this model afterwards.
  CausalLM clone() const {
    CausalLM copy(config_);
    copy.params_.copy_values_from(params_);
    return copy;
  }

  const ModelConfig& config() const noexcept { return config_; }

  // ---- parameters ----
  std::span<Parameter<T, B>> parameters() noexcept { return params_.parameters(); }
  std::span<const Parameter<T, B>> parameters() const noexcept { return params_.parameters(); }
  Parameter<T, B>& parameter(std::string_view name) { return params_[name]; }
  const Parameter<T, B>& parameter(std::string_view name) const { return params_[name]; }
  bool has_parameter(std::string_view name) const noexcept { return params_.contains(name); }
  std::size_t num_parameters() const noexcept { return params_.numel(); }
  // The whole parameter / gradient allocations (padding between tensors included, always zero).
  View all_values() noexcept { return params_.values(); }
  View all_grads() noexcept { return params_.grads(); }

  // Freezing by name: glob (`*`, `?`) or std::regex; returns how many parameters matched.
  std::size_t freeze(std::string_view glob) { return params_.freeze(glob); }
  std::size_t unfreeze(std::string_view glob) { return params_.unfreeze(glob); }
  std::size_t freeze(const std::regex& re) { return params_.freeze(re); }
  std::size_t unfreeze(const std::regex& re) { return params_.unfreeze(re); }

  void zero_grad() { params_.zero_grad(); }

  // GPT-2's initialisation (also used for Llama): matrices N(0, std), the projections into the
  // residual stream N(0, std / sqrt(2 L)), biases 0, norm gains 1.
  void init_random(Rng& rng, double std = 0.02) {
    const double proj_std = std / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
    std::vector<T> host;
    for (auto& p : params_.parameters()) {
      host.assign(p.value.numel(), T(0));
      if (p.value.rank() == 1) {
        const bool gain = p.name.find("norm") != std::string::npos || p.name.find("ln_") != std::string::npos;
        std::fill(host.begin(), host.end(), gain && p.name.ends_with("weight") ? T(1) : T(0));
      } else {
        const bool proj = p.name.ends_with("c_proj.weight") || p.name.ends_with("wo.weight") ||
                          p.name.ends_with("w2.weight");
        const double s = proj ? proj_std : std;
        for (auto& x : host) x = static_cast<T>(s * rng.normal());
      }
      copy(p.value, TensorView<backend::cpu, T>(host.data(), p.value.shape()));
    }
  }

  // ---- training forward / backward ----

  // Runs the model; with targets returns the mean cross-entropy over the counted targets (0 when
  // none count) and prepares backward(); without, returns 0 and keeps logits().
  T forward(const LMInput<T, B>& in) {
    trunk(in);
    head_.forward(logits_, lnf_);
    if (!is_given(in.targets)) {
      loss_ready_ = false;
      logits_valid_ = true;
      return T(0);
    }
    prepare_targets(in.targets);
    loss_ = static_cast<T>(ops::softmax_cross_entropy_fused(logits_, losses_, targets_.view(), T(1)));
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
  void forward_logprobs(const LMInput<T, B>& in, View logprobs, View entropy = {}) {
    if (!is_given(in.targets)) fail<InvalidArgument>("CausalLM::forward_logprobs: targets are required");
    trunk(in);
    head_.forward(logits_, lnf_);
    prepare_targets(in.targets);
    expect_shape("CausalLM::forward_logprobs: logprobs", logprobs.shape(), Shape{B_, S_});
    if (is_given(entropy))
      expect_shape("CausalLM::forward_logprobs: entropy", entropy.shape(), Shape{B_, S_});
    ops::logprob_gather_forward(logprobs, lse_, entropy, logits_, targets_.view());
    logits_valid_ = true;
    loss_ready_ = false;
    logprobs_ready_ = true;
  }

  // Backpropagates d objective / d logprobs (B, S) and, if given, d objective / d hidden (B, S, C)
  // (a value head on hidden()). Accumulates parameter gradients, overwrites prefix_grad().
  void backward_logprobs(const View& dlogprobs, const View& dhidden = {}) {
    if (!logprobs_ready_) fail<InvalidArgument>("CausalLM::backward_logprobs: call forward_logprobs() first");
    expect_shape("CausalLM::backward_logprobs: dlogprobs", dlogprobs.shape(), Shape{B_, S_});
    if (is_given(dhidden))
      expect_shape("CausalLM::backward_logprobs: dhidden", dhidden.shape(), Shape{B_, S_, C()});
    dlogits_.resize(logits_.shape());
    dlogits_.zero();
    ops::logprob_gather_backward(dlogits_.view(), dlogprobs, logits_, targets_.view(), lse_);
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
      copy(last_.view()[b], all[b][s]);
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
  View forward_cached(KVCache<T, B>& cache, const Ids& ids, std::span<const std::int32_t> new_lengths,
                      const View& prefix = {}) {
    static_assert(causal, "forward_cached needs a causal mask");
    if (ids.rank() != 2)
      fail<ShapeError>("CausalLM::forward_cached: ids: expected (B, T), got ", ids.shape());
    const std::size_t Bn = ids.dim(0), Tq = ids.dim(1), P = is_given(prefix) ? prefix.dim(1) : 0;
    const std::size_t Sq = P + Tq;
    if (Bn != cache.batch())
      fail<ShapeError>("CausalLM::forward_cached: batch ", Bn, " but the cache holds ", cache.batch());
    if (new_lengths.size() != Bn)
      fail<ShapeError>("CausalLM::forward_cached: ", new_lengths.size(), " lengths for a batch of ", Bn);
    if (P) expect_shape("CausalLM::forward_cached: prefix", prefix.shape(), Shape{Bn, P, C()});
    if (Sq == 0) fail<InvalidArgument>("CausalLM::forward_cached: nothing to run");
    check_ids("CausalLM::forward_cached: ids", ids);
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

    layout_decode(Bn, Sq, cache.capacity());
    // Positions, key lengths and per-sequence row counts of this step (host values, then the backend).
    host_pos_.resize(Bn * Sq);
    host_keys_.resize(Bn);
    added_.resize(Bn);
    bool same_start = true;
    for (std::size_t b = 0; b < Bn; ++b) {
      for (std::size_t s = 0; s < Sq; ++s) host_pos_[b * Sq + s] = lens[b] + static_cast<std::int32_t>(s);
      added_[b] = static_cast<std::int32_t>(P) + new_lengths[b];
      host_keys_[b] = lens[b] + added_[b];
      same_start = same_start && lens[b] == lens[0];
    }
    upload(dec_pos_, host_pos_, Shape{Bn, Sq});
    upload(dec_keys_, host_keys_, Shape{Bn});

    const View x = dec_x_;
    embedding_.forward(x, prefix, ids, lens);
    typename AttentionLayer::Step step;
    step.positions = dec_pos_.view();
    step.filled = lens;
    step.added = added_;
    step.key_lengths = dec_keys_.view();
    step.same_start = same_start;
    typename BlockLayer::Acts acts = dec_acts_;
    acts.res3 = x;  // each block's output replaces its input (read before res3 is written)
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      step.keys = cache.keys(l);
      step.values = cache.values(l);
      blocks_[l].decode(acts, x, step);
    }
    // Final norm and head on each sequence's last new position only.
    for (std::size_t b = 0; b < Bn; ++b) {
      const std::size_t n = static_cast<std::size_t>(added_[b]), s = n ? n - 1 : 0;
      copy(dec_last_.view()[b], x[b][s]);
    }
    norm_f_.forward(dec_lastn_, dec_mean_, dec_rstd_, dec_last_);
    nn::linear_streamed<B, T>(dec_lastn_.view(), {{dec_out_.view(), head_.weight->value}});
    for (std::size_t b = 0; b < Bn; ++b)
      if (new_lengths[b] > 0 || P > 0) lens[b] += added_[b];
    return dec_out_.view();
  }

 private:
  std::size_t C() const noexcept { return config_.d_model; }
  std::size_t V() const noexcept { return config_.vocab_size; }
  std::size_t seq_len(std::size_t b) const { return lengths_.empty() ? T_ : lengths_[b]; }

  // Binds the modules to the parameters by their architecture's names.
  void bind_modules() {
    const double eps = config_.norm_eps;
    nn::AttentionConfig ac{config_.n_heads, config_.kv_heads(), config_.head_dim(),
                           Arch::learned_positions ? 0.0 : config_.rope_theta};
    blocks_.clear();
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      auto name = [&](const char* what) { return Arch::layer(l, what); };
      auto linear = [&](const char* what, bool bias) {
        return nn::Linear<B, T>::bind(params_, name(what), bias);
      };
      BlockLayer block;
      if constexpr (Arch::gelu_mlp) {
        block.norm1 = Norm::bind(params_, name("ln_1"), eps);
        block.attn = AttentionLayer::fused(ac, linear("attn.c_attn", true), linear("attn.c_proj", true));
        block.norm2 = Norm::bind(params_, name("ln_2"), eps);
        block.mlp = Mlp{linear("mlp.c_fc", true), linear("mlp.c_proj", true)};
      } else {
        block.norm1 = Norm::bind(params_, name("attention_norm"), eps);
        block.attn = AttentionLayer::split(ac, linear("attention.wq", false), linear("attention.wk", false),
                                           linear("attention.wv", false), linear("attention.wo", false));
        block.norm2 = Norm::bind(params_, name("ffn_norm"), eps);
        block.mlp = Mlp{linear("feed_forward.w1", false), linear("feed_forward.w2", false),
                        linear("feed_forward.w3", false)};
      }
      blocks_.push_back(block);
    }
    if constexpr (Arch::gelu_mlp) {
      embedding_ = {&params_["wte.weight"], &params_["wpe.weight"]};
      norm_f_ = Norm::bind(params_, "ln_f", eps);
      head_ = {&params_["wte.weight"], nullptr};
    } else {
      embedding_ = {&params_["tok_embeddings.weight"], nullptr};
      norm_f_ = Norm::bind(params_, "norm", eps);
      head_ = {config_.tied_head ? &params_["tok_embeddings.weight"] : &params_["output.weight"], nullptr};
    }
  }

  using Take = nn::Take<B, T>;  // the two-pass workspace allocator (nn/workspace.hpp)

  // Sizes the workspace for (B, S) and lays out every activation view. Allocates only when growing.
  void layout(std::size_t Bn, std::size_t P, std::size_t Tn) {
    if (Bn == B_ && P == P_ && Tn == T_ && !acts_.empty()) return;
    B_ = Bn, P_ = P, T_ = Tn, S_ = P + Tn;
    const std::size_t N = B_ * S_;
    for (int pass = 0; pass < 2; ++pass) {
      Take take{pass ? work_.data() : nullptr};
      x0_ = take({B_, S_, C()});
      acts_.clear();
      for (const auto& block : blocks_) acts_.push_back(block.layout(take, B_, S_, S_));
      lnf_ = take({B_, S_, C()});
      lnf_mean_ = take({N});
      lnf_rstd_ = take({N});
      logits_ = take({B_, S_, V()});
      losses_ = take({B_, S_});
      lse_ = take({B_, S_});
      if (!pass) work_.resize(Shape{take.off});
    }
    targets_.resize(Shape{B_, S_});
    std::vector<std::int32_t> pos(S_);
    for (std::size_t s = 0; s < S_; ++s) pos[s] = static_cast<std::int32_t>(s);
    upload(positions_, pos, Shape{S_});
    key_lengths_.resize(Shape{B_});
  }

  // Scratch gradient views for backward (one set reused by every layer).
  void layout_grads() {
    for (int pass = 0; pass < 2; ++pass) {
      Take take{pass ? gwork_.data() : nullptr};
      dres_ = take({B_, S_, C()});
      dlnf_ = take({B_, S_, C()});
      if (!blocks_.empty()) scratch_ = blocks_.front().layout_scratch(take, B_, S_);
      if (blocks_.empty()) scratch_.norm = take({2 * C()});
      if (!pass) gwork_.resize(Shape{take.off});
    }
  }

  // Decoding workspace for Bn sequences of Sq new rows over a cache of `capacity` positions.
  void layout_decode(std::size_t Bn, std::size_t Sq, std::size_t capacity) {
    for (int pass = 0; pass < 2; ++pass) {
      Take take{pass ? dec_work_.data() : nullptr};
      dec_x_ = take({Bn, Sq, C()});
      if (!blocks_.empty()) dec_acts_ = blocks_.front().layout(take, Bn, Sq, capacity, true);
      if (!pass) dec_work_.resize(Shape{take.off});
    }
    dec_last_.resize(Shape{Bn, C()});
    dec_lastn_.resize(Shape{Bn, C()});
    dec_mean_.resize(Shape{Bn});
    dec_rstd_.resize(Shape{Bn});
    dec_out_.resize(Shape{Bn, V()});
  }

  // Host int values onto the backend (a plain copy on the CPU).
  static void upload(Tensor<B, std::int32_t>& dst, std::vector<std::int32_t>& host, Shape shape) {
    dst.resize(shape);
    copy(dst.view(), TensorView<backend::cpu, std::int32_t>(host.data(), shape));
  }
  static void download(std::vector<std::int32_t>& host, const Ids& v) {
    host.resize(v.numel());
    copy(TensorView<backend::cpu, std::int32_t>(host.data(), v.shape()), v);
  }

  // Every id in [0, V): checked here for a message naming the model (device ids: by the embedding op).
  void check_ids(const char* what, const Ids& ids) const {
    if constexpr (!B::is_device) {
      const std::int32_t* p = ids.data();
      for (std::size_t i = 0; i < ids.numel(); ++i)
        if (p[i] < 0 || static_cast<std::size_t>(p[i]) >= V())
          fail<InvalidArgument>(what, ": id ", p[i], " at position ", i, " is outside [0, ", V(), ")");
    }
  }

  void trunk(const LMInput<T, B>& in) {
    if (in.ids.rank() != 2) fail<ShapeError>("CausalLM::forward: ids: expected (B, T), got ", in.ids.shape());
    const std::size_t Bn = in.ids.dim(0), Tn = in.ids.dim(1);
    const bool has_prefix = is_given(in.prefix);
    if (has_prefix && (in.prefix.rank() != 3 || in.prefix.dim(0) != Bn || in.prefix.dim(2) != C()))
      fail<ShapeError>("CausalLM::forward: prefix: expected (", Bn, ", P, ", C(), "), got ",
                       in.prefix.shape());
    const std::size_t P = has_prefix ? in.prefix.dim(1) : 0;
    if (P + Tn == 0) fail<InvalidArgument>("CausalLM::forward: empty sequences");
    if (Arch::learned_positions && P + Tn > config_.max_seq)
      fail<InvalidArgument>("CausalLM::forward: ", P + Tn, " positions exceed max_seq ", config_.max_seq);
    check_ids("CausalLM::forward: ids", in.ids);
    lengths_.clear();
    if (is_given(in.lengths)) {
      expect_shape("CausalLM::forward: lengths", in.lengths.shape(), Shape{Bn});
      download(host_ints_, in.lengths);
      for (const std::int32_t len : host_ints_) {
        const std::size_t b = lengths_.size();
        if (len < 0 || static_cast<std::size_t>(len) > Tn || (len == 0 && P == 0))
          fail<InvalidArgument>("CausalLM::forward: lengths[", b, "] = ", len, " outside [", P ? 0 : 1, ", ",
                                Tn, "]");
        lengths_.push_back(static_cast<std::size_t>(len));
      }
    }
    layout(Bn, P, Tn);
    has_prefix_ = has_prefix;
    embedding_.forward(x0_, in.prefix, in.ids);
    ids_.resize(in.ids.shape());
    copy(ids_.view(), in.ids);

    pass_ = {};
    pass_.positions = positions_.view();
    pass_.options.causal = causal;
    if (!lengths_.empty()) {
      host_ints_.resize(B_);
      for (std::size_t b = 0; b < B_; ++b) host_ints_[b] = static_cast<std::int32_t>(P_ + lengths_[b]);
      upload(key_lengths_, host_ints_, Shape{B_});
      pass_.options.key_lengths = key_lengths_.view();
    }
    View x = x0_;
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      blocks_[l].forward(acts_[l], x, pass_);
      x = acts_[l].res3;
    }
    norm_f_.forward(lnf_, lnf_mean_, lnf_rstd_, x);
  }

  // Targets with padded positions set to the ignore index (in place on the CPU; through the host
  // on a device).
  void prepare_targets(const Ids& targets) {
    expect_shape("CausalLM::forward: targets", targets.shape(), Shape{B_, S_});
    auto mask_padding = [&](std::int32_t* t) {
      if (!lengths_.empty())
        for (std::size_t b = 0; b < B_; ++b)
          for (std::size_t s = P_ + lengths_[b]; s < S_; ++s) t[b * S_ + s] = ignore_index;
    };
    if constexpr (!B::is_device) {
      targets_.resize(Shape{B_, S_});
      copy(targets_.view(), targets);
      mask_padding(targets_.data());
    } else {
      download(host_ints_, targets);
      mask_padding(host_ints_.data());
      upload(targets_, host_ints_, Shape{B_, S_});
    }
  }

  void backward_from_dlogits(const View& dlogits, const View& dhidden) {
    layout_grads();
    // Head: dlnf = dlogits · W, dW += dlogitsᵀ · lnf.
    fill(dlnf_, T(0));
    head_.backward(dlnf_, dlogits, lnf_);
    if (is_given(dhidden)) ops::residual_backward(dlnf_, View{}, dhidden);
    fill(dres_, T(0));
    const View last = blocks_.empty() ? x0_ : acts_.back().res3;
    norm_f_.backward(dres_, dlnf_, last, lnf_mean_, lnf_rstd_, scratch_.norm);

    // Below layer l, is any gradient still needed (a trainable parameter or the prefix)?
    const std::size_t L = blocks_.size();
    std::vector<bool> needed(L + 1, false);
    needed[0] = has_prefix_ || embedding_.trainable();
    for (std::size_t l = 0; l < L; ++l) needed[l + 1] = needed[l] || blocks_[l].trainable();

    for (std::size_t li = L; li-- > 0;) {
      if (!needed[li + 1]) break;
      const View x = li ? acts_[li - 1].res3 : x0_;
      blocks_[li].backward(dres_, acts_[li], x, pass_, scratch_);
    }
    // dres_ is now d loss / d x0.
    dprefix_.resize(Shape{B_, P_, C()});
    if (!needed[0]) return;
    embedding_.backward(P_ ? dprefix_.view() : View{}, dres_, ids_.view());
  }

  ModelConfig config_;
  nn::ParameterSet<B, T> params_;
  nn::Embedding<B, T> embedding_;
  std::vector<BlockLayer> blocks_;
  Norm norm_f_;
  nn::Linear<B, T> head_;

  // Training workspace.
  std::size_t B_ = 0, P_ = 0, T_ = 0, S_ = 0;
  Tensor<B, T> work_, gwork_, dlogits_, dprefix_, last_;
  Tensor<B, std::int32_t> ids_, targets_, positions_, key_lengths_;
  std::vector<typename BlockLayer::Acts> acts_;
  typename BlockLayer::Scratch scratch_{};
  typename AttentionLayer::Pass pass_{};
  View x0_, lnf_, lnf_mean_, lnf_rstd_, logits_, losses_, lse_, dres_, dlnf_;
  std::vector<std::size_t> lengths_;
  std::vector<std::int32_t> host_ints_;  // lengths, key lengths, targets on their way to the backend
  bool has_prefix_ = false, loss_ready_ = false, logits_valid_ = false, logprobs_ready_ = false;
  T loss_ = 0;

  // Decoding workspace.
  Tensor<B, T> dec_work_, dec_last_, dec_lastn_, dec_mean_, dec_rstd_, dec_out_;
  Tensor<B, std::int32_t> dec_pos_, dec_keys_;
  View dec_x_;
  typename BlockLayer::Acts dec_acts_{};
  std::vector<std::int32_t> host_pos_, host_keys_, added_;
};

template <Scalar T = float>
using GPT2LM = CausalLM<backend::cpu, arch::GPT2, attention::Causal, T>;
template <Scalar T = float>
using LlamaLM = CausalLM<backend::cpu, arch::Llama, attention::Causal, T>;

}  // namespace p4lm
