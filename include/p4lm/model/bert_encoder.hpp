#pragma once
// BertEncoder: a BERT encoder (post-LN blocks, bidirectional attention, absolute positions, token
// types, exact-erf GELU) with sentence-transformers' mean pooling and L2 normalisation on top, forward
// and backward; all-MiniLM-L6-v2 is the checkpoint it is built for (the reward models' encoder).
//
//   auto enc = p4lm::BertEncoder<>::load("models/all-minilm-l6-v2");   // config.json + model.safetensors
//   auto emb = enc.forward({.ids = ids, .lengths = lengths});          // (B, C) unit vectors
//   enc.zero_grad(); enc.backward(d_loss_d_emb);                        // p.grad for p in parameters()
//   p4lm::SentenceEncoder st("models/all-minilm-l6-v2");                // + its WordPiece tokenizer
//   std::vector<float> v = st.embed({"A heist movie"})[0];              // 384 floats
//
// Per layer (x the layer input, (B, T, C) rows):
//   qkv = x Wqkvᵀ + b            attention.self.{query,key,value}: one (3C, C) product; the three HF
//                                tensors are consecutive in the parameter allocation, so they ARE that matrix
//   a   = Attention(qkv)         bidirectional, keys past lengths[b] masked (right padding)
//   h1  = LN1(a Woᵀ + bo + x)    attention.output.{dense, LayerNorm}
//   h2  = LN2(GELU(h1 W1ᵀ + b1) W2ᵀ + b2 + h1)   intermediate.dense, output.{dense, LayerNorm}
// and before the layers h0 = LN0(word[ids] + position[t] + token_type[type]) (embeddings.*).
// Each step is one op of ops/ and maps one-to-one onto a module of nn/ (Linear, Attention with a
// bidirectional mask, LayerNorm, MLP with the exact GELU); the block is post-norm, unlike nn::Block.
//
// Memory: parameters in ONE allocation and gradients in another, each a named Parameter view with
// Hugging Face's names; activations in one workspace that only grows. forward() keeps every layer's
// activations for backward(); encode() (inference) runs all layers through one layer's buffers.
// Padding positions are computed but never attended to and never pooled, so they get no gradient.
// backward() reads the ids, token types and inputs_embeds that forward() was given: keep them alive.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/attention.hpp"
#include "p4lm/ops/embedding.hpp"
#include "p4lm/ops/gelu.hpp"
#include "p4lm/ops/layernorm.hpp"
#include "p4lm/ops/matmul.hpp"
#include "p4lm/ops/residual.hpp"
#include "p4lm/text/wordpiece_tokenizer.hpp"

namespace p4lm {

// BERT's hyperparameters (Hugging Face config.json names in the comments); defaults are MiniLM-L6's.
struct BertConfig {
  std::size_t vocab_size = 30522;    // vocab_size
  std::size_t max_positions = 512;   // max_position_embeddings
  std::size_t type_vocab_size = 2;   // type_vocab_size
  std::size_t d_model = 384;         // hidden_size
  std::size_t n_layers = 6;          // num_hidden_layers
  std::size_t n_heads = 12;          // num_attention_heads
  std::size_t d_ff = 1536;           // intermediate_size
  double layer_norm_eps = 1e-12;     // layer_norm_eps
  bool mean_pooling = true;          // sentence-transformers 1_Pooling: mean over valid tokens
  bool normalize = true;             // sentence-transformers 2_Normalize: unit-length embeddings
  std::size_t max_seq_length = 512;  // sentence_bert_config.json: tokens per text (truncation)

  void validate() const {
    if (d_model == 0 || n_heads == 0 || d_model % n_heads != 0)
      fail<InvalidArgument>("BertConfig: hidden_size ", d_model, " is not a multiple of num_attention_heads ",
                            n_heads);
    if (vocab_size == 0 || max_positions == 0 || type_vocab_size == 0 || n_layers == 0 || d_ff == 0)
      fail<InvalidArgument>("BertConfig: every size must be positive");
    if (!(layer_norm_eps > 0)) fail<InvalidArgument>("BertConfig: layer_norm_eps must be positive");
  }

  // A Hugging Face BERT config.json (model_type "bert", hidden_act "gelu", absolute positions).
  static BertConfig from_json(const std::filesystem::path& path) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(io::read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(path, 0, "", std::string("invalid JSON: ") + e.what());
    }
    auto str = [&](const char* key, const char* want) {
      const auto it = j.find(key);
      if (it == j.end() || !it->is_string() || it->get<std::string>() != want)
        throw ParseError(
            path, 0, key,
            std::string("expected \"") + want + "\", got " + (it == j.end() ? "nothing" : it->dump()));
    };
    str("model_type", "bert");
    str("hidden_act", "gelu");
    if (j.contains("position_embedding_type")) str("position_embedding_type", "absolute");
    BertConfig c;
    auto size = [&](const char* key, std::size_t& out) {
      const auto it = j.find(key);
      if (it == j.end() || !it->is_number_unsigned())
        throw ParseError(path, 0, key, "missing or not a positive integer");
      out = it->get<std::size_t>();
    };
    size("vocab_size", c.vocab_size);
    size("max_position_embeddings", c.max_positions);
    size("type_vocab_size", c.type_vocab_size);
    size("hidden_size", c.d_model);
    size("num_hidden_layers", c.n_layers);
    size("num_attention_heads", c.n_heads);
    size("intermediate_size", c.d_ff);
    if (const auto it = j.find("layer_norm_eps"); it != j.end() && it->is_number())
      c.layer_norm_eps = it->get<double>();
    try {
      c.validate();
    } catch (const InvalidArgument& e) {
      throw ParseError(path, 0, "", e.what());
    }
    c.max_seq_length = c.max_positions;
    return c;
  }

  // A sentence-transformers folder: config.json plus the pooling, normalisation and length settings.
  static BertConfig from_folder(const std::filesystem::path& dir) {
    auto c = from_json(dir / "config.json");
    auto read = [](const std::filesystem::path& p) {
      try {
        return nlohmann::json::parse(io::read_file(p));
      } catch (const nlohmann::json::exception& e) {
        throw ParseError(p, 0, "", std::string("invalid JSON: ") + e.what());
      }
    };
    if (const auto p = dir / "sentence_bert_config.json"; std::filesystem::exists(p)) {
      const auto j = read(p);
      if (const auto it = j.find("max_seq_length"); it != j.end()) {
        if (!it->is_number_unsigned() || it->get<std::size_t>() < 2 ||
            it->get<std::size_t>() > c.max_positions)
          throw ParseError(p, 0, "max_seq_length", "must be an integer in [2, max_position_embeddings]");
        c.max_seq_length = it->get<std::size_t>();
      }
    }
    if (const auto p = dir / "1_Pooling" / "config.json"; std::filesystem::exists(p)) {
      const auto j = read(p);
      for (const char* other :
           {"pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"})
        if (j.value(other, false)) throw ParseError(p, 0, other, "only mean pooling is implemented");
      if (!j.value("pooling_mode_mean_tokens", false))
        throw ParseError(p, 0, "pooling_mode_mean_tokens", "only mean pooling is implemented");
    }
    if (const auto p = dir / "modules.json"; std::filesystem::exists(p)) {
      const auto j = read(p);
      c.normalize = false;
      if (j.is_array())
        for (const auto& m : j)
          if (m.value("type", std::string()) == "sentence_transformers.models.Normalize") c.normalize = true;
    }
    return c;
  }
};

// The inputs of one pass: B right-padded sequences of T tokens.
template <Scalar T = float, Backend B = backend::cpu>
struct BertInput {
  TensorView<B, std::int32_t> ids{};       // (B, T) token ids (may be {} when inputs_embeds is given)
  TensorView<B, std::int32_t> type_ids{};  // (B, T) token types, or {} (all 0)
  TensorView<B, std::int32_t> lengths{};   // (B) valid tokens per sequence, or {} (= T)
  TensorView<B, T> inputs_embeds{};        // (B, T, C) vectors that replace the word-embedding lookup, or {}
};

template <Backend B = backend::cpu, Scalar T = float>
class BertEncoder {
  static_assert(std::is_same_v<B, backend::cpu>, "BertEncoder: only the CPU backend is implemented so far");

 public:
  using View = TensorView<B, T>;
  using Ids = TensorView<B, std::int32_t>;

  explicit BertEncoder(BertConfig config) : config_(config) {
    config_.validate();
    const std::size_t C = config_.d_model, F = config_.d_ff;
    add("embeddings.word_embeddings.weight", {config_.vocab_size, C}, true);
    add("embeddings.position_embeddings.weight", {config_.max_positions, C}, true);
    add("embeddings.token_type_embeddings.weight", {config_.type_vocab_size, C}, true);
    add("embeddings.LayerNorm.weight", {C}, false);
    add("embeddings.LayerNorm.bias", {C}, false);
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const std::string p = "encoder.layer." + std::to_string(l) + ".";
      // query, key, value weights then their biases, consecutively: together the fused qkv product.
      for (const char* w : {"query", "key", "value"})
        add(p + "attention.self." + w + ".weight", {C, C}, true);
      for (const char* w : {"query", "key", "value"}) add(p + "attention.self." + w + ".bias", {C}, false);
      add(p + "attention.output.dense.weight", {C, C}, true);
      add(p + "attention.output.dense.bias", {C}, false);
      add(p + "attention.output.LayerNorm.weight", {C}, false);
      add(p + "attention.output.LayerNorm.bias", {C}, false);
      add(p + "intermediate.dense.weight", {F, C}, true);
      add(p + "intermediate.dense.bias", {F}, false);
      add(p + "output.dense.weight", {C, F}, true);
      add(p + "output.dense.bias", {C}, false);
      add(p + "output.LayerNorm.weight", {C}, false);
      add(p + "output.LayerNorm.bias", {C}, false);
    }
    values_.resize(Shape{total_});
    grads_.resize(Shape{total_});
    bind();
  }

  BertEncoder(const BertEncoder& other) : BertEncoder(other.config_) {
    std::copy(other.values_.data(), other.values_.data() + total_, values_.data());
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].trainable = other.params_[i].trainable;
  }
  BertEncoder& operator=(const BertEncoder&) = delete;

  // A sentence-transformers folder (config.json, model.safetensors, pooling and normalisation configs).
  static BertEncoder load(const std::filesystem::path& dir) {
    BertEncoder enc(BertConfig::from_folder(dir));
    enc.load_weights(io::SafetensorsFile::open(dir / "model.safetensors"));
    return enc;
  }

  // Copies every parameter from a Hugging Face BertModel checkpoint (names as in parameters(), an
  // optional "bert." prefix; the pooler and position_ids are not used). A missing tensor or a shape
  // mismatch is a ParseError naming the file and tensor; nothing is copied unless all are present.
  void load_weights(const io::SafetensorsFile& file) {
    std::vector<std::string> names;
    for (const auto& p : params_) {
      std::string name = p.name;
      if (!file.contains(name) && file.contains("bert." + name)) name = "bert." + name;
      if (!file.contains(name))
        throw ParseError(file.path(), 0, p.name, "tensor missing: not a BERT checkpoint");
      const auto& t = file.at(name);
      if (t.numel() != p.value.numel() || t.shape.size() != p.value.rank())
        throw ParseError(file.path(), 0, name,
                         "shape does not match the config (" + shape_str(p.value.shape()) + ")");
      for (std::size_t d = 0; d < t.shape.size(); ++d)
        if (static_cast<std::size_t>(t.shape[d]) != p.value.dim(d))
          throw ParseError(file.path(), 0, name,
                           "shape does not match the config (" + shape_str(p.value.shape()) + ")");
      names.push_back(std::move(name));
    }
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto v = file.read_f32(names[i]);
      std::transform(v.begin(), v.end(), params_[i].value.data(), [](float x) { return static_cast<T>(x); });
    }
  }

  // BERT's initialisation: weights N(0, std), biases 0, LayerNorm gains 1.
  void init_random(Rng& rng, double std = 0.02) {
    for (auto& p : params_) {
      auto v = p.value.span();
      if (p.name.find("LayerNorm.weight") != std::string::npos)
        std::fill(v.begin(), v.end(), T(1));
      else if (p.value.rank() == 1)
        std::fill(v.begin(), v.end(), T(0));
      else
        for (auto& x : v) x = static_cast<T>(std * rng.normal());
    }
  }

  const BertConfig& config() const noexcept { return config_; }
  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  Parameter<T>& parameter(std::string_view name) {
    for (auto& p : params_)
      if (p.name == name) return p;
    fail<InvalidArgument>("BertEncoder: no parameter named '", name, "'");
  }
  std::size_t num_parameters() const noexcept { return total_; }
  void zero_grad() { grads_.zero(); }

  // Training pass: keeps what backward() needs. Returns the sentence embeddings (B, C).
  View forward(const BertInput<T, B>& in) { return run(in, true); }
  // Inference pass: same result, all layers through one set of buffers (backward() is refused).
  View encode(const BertInput<T, B>& in) { return run(in, false); }

  View hidden() const { return hidden_; }      // (B, T, C) last layer's output
  View pooled() const { return pooled_; }      // (B, C) mean of the valid rows of hidden()
  View embeddings() const { return out_; }     // (B, C) pooled, normalised if the config says so
  View input_grad() const { return dinput_; }  // (B, T, C) d loss / d inputs_embeds after backward()

  // Accumulates d loss / d parameters given d loss / d embeddings() (B, C); with inputs_embeds, also
  // d loss / d inputs_embeds into input_grad() (overwritten).
  void backward(const View& demb) { backward_impl(demb, {}); }
  // Same, given d loss / d hidden() (B, T, C) as well (token-level heads); either may be {}.
  void backward(const View& demb, const View& dhidden) { backward_impl(demb, dhidden); }

 private:
  struct LayerParams {
    View qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, fc_w, fc_b, proj_w, proj_b, ln2_w, ln2_b;
  };
  struct LayerActs {
    View x;  // the layer's input (B, T, C): the previous layer's h2, or h0
    View qkv, att, probs, r1, h1, mean1, rstd1, f, g, r2, h2, mean2, rstd2;
  };

  static std::string shape_str(const Shape& s) {
    std::string out;
    for (std::size_t d = 0; d < s.rank(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
    return out;
  }

  void add(std::string name, Shape shape, bool decay) {
    offsets_.push_back(total_);
    params_.push_back({std::move(name), {}, {}, true, decay});
    shapes_.push_back(shape);
    total_ += shape.numel();
  }

  void bind() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      params_[i].value = View(values_.data() + offsets_[i], shapes_[i]);
      params_[i].grad = View(grads_.data() + offsets_[i], shapes_[i]);
    }
  }

  // Layer l's parameters (values, or gradients when grad is true) as fused views.
  LayerParams layer_params(std::size_t l, bool grad) {
    const std::size_t C = config_.d_model, F = config_.d_ff;
    const std::size_t base = 5 + l * 16;
    T* root = grad ? grads_.data() : values_.data();
    auto at = [&](std::size_t i, Shape s) { return View(root + offsets_[base + i], s); };
    return {at(0, {3 * C, C}), at(3, {3 * C}), at(6, {C, C}),  at(7, {C}),  at(8, {C}),  at(9, {C}),
            at(10, {F, C}),    at(11, {F}),    at(12, {C, F}), at(13, {C}), at(14, {C}), at(15, {C})};
  }
  View param(std::size_t i, bool grad = false) const { return grad ? params_[i].grad : params_[i].value; }

  // Carves the workspace for (Bn, Tn); keep: one set of activations per layer, else one shared set.
  void layout(std::size_t Bn, std::size_t Tn, bool keep) {
    const std::size_t C = config_.d_model, F = config_.d_ff, H = config_.n_heads, N = Bn * Tn;
    const std::size_t sets = keep ? config_.n_layers : 1;
    const std::size_t per_layer = N * (3 * C + 5 * C + 2 * F + 4) + Bn * H * Tn * Tn;
    const std::size_t need = N * (2 * C + 2) + 2 * Bn * C + sets * per_layer;
    if (work_.numel() < need) work_.resize(Shape{need});
    T* p = work_.data();
    auto take = [&](Shape s) {
      View v(p, s);
      p += s.numel();
      return v;
    };
    e_ = take({Bn, Tn, C});
    h0_ = take({Bn, Tn, C});
    mean0_ = take({N});
    rstd0_ = take({N});
    pooled_ = take({Bn, C});
    out_ = take({Bn, C});
    acts_.assign(config_.n_layers, {});
    std::vector<LayerActs> sets_v(sets);
    for (auto& a : sets_v) {
      a.qkv = take({Bn, Tn, 3 * C});
      a.att = take({Bn, Tn, H, C / H});
      a.probs = take({Bn, H, Tn, Tn});
      a.r1 = take({Bn, Tn, C});
      a.h1 = take({Bn, Tn, C});
      a.f = take({Bn, Tn, F});
      a.g = take({Bn, Tn, F});
      a.r2 = take({Bn, Tn, C});
      a.h2 = take({Bn, Tn, C});
      a.mean1 = take({N});
      a.rstd1 = take({N});
      a.mean2 = take({N});
      a.rstd2 = take({N});
    }
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      acts_[l] = sets_v[keep ? l : 0];
      acts_[l].x = l == 0 ? h0_ : acts_[l - 1].h2;
    }
    hidden_ = acts_.back().h2;
  }

  void check_input(const BertInput<T, B>& in, std::size_t& Bn, std::size_t& Tn) const {
    if (in.inputs_embeds.data() != nullptr) {
      if (in.inputs_embeds.rank() != 3 || in.inputs_embeds.dim(2) != config_.d_model)
        fail<ShapeError>("BertEncoder: inputs_embeds must be (B, T, ", config_.d_model, "), got ",
                         in.inputs_embeds.shape());
      Bn = in.inputs_embeds.dim(0), Tn = in.inputs_embeds.dim(1);
    } else {
      if (in.ids.rank() != 2) fail<ShapeError>("BertEncoder: ids must be (B, T), got ", in.ids.shape());
      Bn = in.ids.dim(0), Tn = in.ids.dim(1);
      for (const auto id : in.ids.span())
        if (id < 0 || static_cast<std::size_t>(id) >= config_.vocab_size)
          fail<InvalidArgument>("BertEncoder: token id ", id, " outside the vocabulary [0, ",
                                config_.vocab_size, ")");
    }
    if (Bn == 0 || Tn == 0) fail<ShapeError>("BertEncoder: empty batch (B = ", Bn, ", T = ", Tn, ")");
    if (Tn > config_.max_positions)
      fail<ShapeError>("BertEncoder: ", Tn, " tokens exceed max_position_embeddings ", config_.max_positions);
    if (in.type_ids.data() != nullptr) {
      expect_shape("BertEncoder: type_ids", in.type_ids.shape(), Shape{Bn, Tn});
      for (const auto t : in.type_ids.span())
        if (t < 0 || static_cast<std::size_t>(t) >= config_.type_vocab_size)
          fail<InvalidArgument>("BertEncoder: token type ", t, " outside [0, ", config_.type_vocab_size, ")");
    }
    if (in.lengths.data() != nullptr) {
      expect_shape("BertEncoder: lengths", in.lengths.shape(), Shape{Bn});
      for (const auto n : in.lengths.span())
        if (n < 1 || static_cast<std::size_t>(n) > Tn)
          fail<InvalidArgument>("BertEncoder: a length of ", n, " is outside [1, T = ", Tn, "]");
    }
  }

  View run(const BertInput<T, B>& in, bool keep) {
    std::size_t Bn = 0, Tn = 0;
    check_input(in, Bn, Tn);
    const std::size_t C = config_.d_model, N = Bn * Tn;
    layout(Bn, Tn, keep);
    kept_ = keep;
    Bn_ = Bn, Tn_ = Tn;
    input_ = in;
    lengths_.assign(Bn, static_cast<std::int32_t>(Tn));
    if (in.lengths.data() != nullptr) std::copy(in.lengths.data(), in.lengths.data() + Bn, lengths_.begin());
    lengths_view_ = Ids(lengths_.data(), Shape{Bn});
    const T eps = static_cast<T>(config_.layer_norm_eps);

    // Embeddings: word (or the given vectors) + position + token type, then LayerNorm.
    const View wpe = param(1), wtt = param(2);
    if (in.inputs_embeds.data() != nullptr) {
      for (std::size_t r = 0; r < N; ++r)
        for (std::size_t c = 0; c < C; ++c)
          e_.data()[r * C + c] = in.inputs_embeds.data()[r * C + c] + wpe.data()[(r % Tn) * C + c];
    } else {
      ops::embedding_forward(e_, in.ids, param(0), wpe.rows(0, Tn));
    }
    for (std::size_t r = 0; r < N; ++r) {
      const std::size_t t = in.type_ids.data() ? static_cast<std::size_t>(in.type_ids.data()[r]) : 0;
      const T* w = wtt.data() + t * C;
      T* y = e_.data() + r * C;
      for (std::size_t c = 0; c < C; ++c) y[c] += w[c];
    }
    ops::layernorm_forward(h0_, mean0_, rstd0_, e_, param(3), param(4), eps);

    const auto opts = attention_options();
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const auto p = layer_params(l, false);
      auto& a = acts_[l];
      ops::matmul_forward(a.qkv, a.x, p.qkv_w, p.qkv_b);
      ops::attention_forward_qkv(a.att, a.probs, a.qkv, config_.n_heads, opts);
      ops::matmul_forward(a.r1, a.att.reshaped({Bn, Tn, C}), p.o_w, p.o_b);
      ops::residual_forward(a.r1, a.r1, a.x);
      ops::layernorm_forward(a.h1, a.mean1, a.rstd1, a.r1, p.ln1_w, p.ln1_b, eps);
      ops::matmul_forward(a.f, a.h1, p.fc_w, p.fc_b);
      ops::gelu_erf_forward(a.g, a.f);
      ops::matmul_forward(a.r2, a.g, p.proj_w, p.proj_b);
      ops::residual_forward(a.r2, a.r2, a.h1);
      // Without kept activations x is this very buffer: it was last read by the residual above.
      ops::layernorm_forward(a.h2, a.mean2, a.rstd2, a.r2, p.ln2_w, p.ln2_b, eps);
    }

    // Mean over the valid tokens, then unit length (torch's F.normalize: x / max(|x|, 1e-12)).
    for (std::size_t b = 0; b < Bn; ++b) {
      const std::size_t n = static_cast<std::size_t>(lengths_[b]);
      T* pb = pooled_.data() + b * C;
      std::fill(pb, pb + C, T(0));
      for (std::size_t t = 0; t < n; ++t) {
        const T* h = hidden_.data() + (b * Tn + t) * C;
        for (std::size_t c = 0; c < C; ++c) pb[c] += h[c];
      }
      for (std::size_t c = 0; c < C; ++c) pb[c] /= static_cast<T>(n);
      T* ob = out_.data() + b * C;
      const T scale = config_.normalize ? T(1) / std::max(norm(pb), T(1e-12)) : T(1);
      for (std::size_t c = 0; c < C; ++c) ob[c] = pb[c] * scale;
    }
    return out_;
  }

  T norm(const T* v) const {
    double s = 0;
    for (std::size_t c = 0; c < config_.d_model; ++c) s += double(v[c]) * double(v[c]);
    return static_cast<T>(std::sqrt(s));
  }

  ops::AttentionOptions<B> attention_options() const {
    ops::AttentionOptions<B> o;
    o.causal = false;
    o.key_lengths = lengths_view_;
    return o;
  }

  void backward_impl(const View& demb, const View& dhidden) {
    if (!kept_) fail<UsageError>("BertEncoder::backward: needs forward(), not encode(), before it");
    const std::size_t Bn = Bn_, Tn = Tn_, C = config_.d_model, F = config_.d_ff, N = Bn * Tn;
    const bool has_demb = demb.data() != nullptr, has_dh = dhidden.data() != nullptr;
    if (has_demb) expect_shape("BertEncoder::backward: demb", demb.shape(), Shape{Bn, C});
    if (has_dh) expect_shape("BertEncoder::backward: dhidden", dhidden.shape(), Shape{Bn, Tn, C});
    const std::size_t need = N * (5 * C + 2 * F + 3 * C) + Bn * C;
    if (dwork_.numel() < need) dwork_.resize(Shape{need});
    T* p = dwork_.data();
    auto take = [&](Shape s) {
      View v(p, s);
      p += s.numel();
      return v;
    };
    View dx = take({Bn, Tn, C}), dr = take({Bn, Tn, C}), dh1 = take({Bn, Tn, C}), datt = take({Bn, Tn, C}),
         de = take({Bn, Tn, C}), dg = take({Bn, Tn, F}), df = take({Bn, Tn, F}), dqkv = take({Bn, Tn, 3 * C}),
         dpool = take({Bn, C});
    auto zero = [](View v) { std::fill(v.data(), v.data() + v.numel(), T(0)); };

    // Through the normalisation and the mean: d hidden rows = d pooled / n on valid rows, 0 on padding.
    if (has_dh)
      std::copy(dhidden.data(), dhidden.data() + N * C, dx.data());
    else
      zero(dx);
    if (has_demb) {
      for (std::size_t b = 0; b < Bn; ++b) {
        const T* g = demb.data() + b * C;
        T* dp = dpool.data() + b * C;
        if (config_.normalize) {
          const T* pb = pooled_.data() + b * C;
          const T nrm = norm(pb);
          if (nrm > T(1e-12)) {
            const T* ob = out_.data() + b * C;
            T dot = 0;
            for (std::size_t c = 0; c < C; ++c) dot += ob[c] * g[c];
            for (std::size_t c = 0; c < C; ++c) dp[c] = (g[c] - ob[c] * dot) / nrm;
          } else {
            for (std::size_t c = 0; c < C; ++c) dp[c] = g[c] / T(1e-12);
          }
        } else {
          std::copy(g, g + C, dp);
        }
        const std::size_t n = static_cast<std::size_t>(lengths_[b]);
        for (std::size_t t = 0; t < n; ++t) {
          T* row = dx.data() + (b * Tn + t) * C;
          for (std::size_t c = 0; c < C; ++c) row[c] += dp[c] / static_cast<T>(n);
        }
      }
    }

    const auto opts = attention_options();
    for (std::size_t l = config_.n_layers; l-- > 0;) {
      const auto p = layer_params(l, false);
      const auto gp = layer_params(l, true);
      const auto& a = acts_[l];
      // h2 = LN2(r2), r2 = g W2ᵀ + b2 + h1
      zero(dr);
      ops::layernorm_backward(dr, gp.ln2_w, gp.ln2_b, dx, a.r2, p.ln2_w, a.mean2, a.rstd2);
      std::copy(dr.data(), dr.data() + N * C, dh1.data());
      zero(dg);
      ops::matmul_backward(dg, gp.proj_w, gp.proj_b, dr, a.g, p.proj_w);
      zero(df);
      ops::gelu_erf_backward(df, dg, a.f);
      ops::matmul_backward(dh1, gp.fc_w, gp.fc_b, df, a.h1, p.fc_w);
      // h1 = LN1(r1), r1 = att Woᵀ + bo + x
      zero(dr);
      ops::layernorm_backward(dr, gp.ln1_w, gp.ln1_b, dh1, a.r1, p.ln1_w, a.mean1, a.rstd1);
      std::copy(dr.data(), dr.data() + N * C, dx.data());
      zero(datt);
      ops::matmul_backward(datt, gp.o_w, gp.o_b, dr, a.att.reshaped({Bn, Tn, C}), p.o_w);
      zero(dqkv);
      ops::attention_backward_qkv(dqkv, datt.reshaped({Bn, Tn, config_.n_heads, C / config_.n_heads}), a.qkv,
                                  a.probs, config_.n_heads, opts);
      ops::matmul_backward(dx, gp.qkv_w, gp.qkv_b, dqkv, a.x, p.qkv_w);
    }

    // h0 = LN0(e), e = word + position + token type
    zero(de);
    ops::layernorm_backward(de, param(3, true), param(4, true), dx, e_, param(3), mean0_, rstd0_);
    View dwpe = param(1, true), dwtt = param(2, true);
    if (input_.inputs_embeds.data() != nullptr) {
      dinput_storage_.resize(Shape{Bn, Tn, C});
      std::copy(de.data(), de.data() + N * C, dinput_storage_.data());
      dinput_ = dinput_storage_.view();
      for (std::size_t r = 0; r < N; ++r)
        for (std::size_t c = 0; c < C; ++c) dwpe.data()[(r % Tn) * C + c] += de.data()[r * C + c];
    } else {
      ops::embedding_backward(param(0, true), dwpe.rows(0, Tn), de, input_.ids);
      dinput_ = {};
    }
    for (std::size_t r = 0; r < N; ++r) {
      const std::size_t t = input_.type_ids.data() ? static_cast<std::size_t>(input_.type_ids.data()[r]) : 0;
      T* w = dwtt.data() + t * C;
      const T* g = de.data() + r * C;
      for (std::size_t c = 0; c < C; ++c) w[c] += g[c];
    }
  }

  BertConfig config_;
  std::vector<Parameter<T>> params_;
  std::vector<Shape> shapes_;
  std::vector<std::size_t> offsets_;
  std::size_t total_ = 0;
  Tensor<B, T> values_, grads_, work_, dwork_, dinput_storage_;
  std::vector<LayerActs> acts_;
  View e_, h0_, mean0_, rstd0_, pooled_, out_, hidden_, dinput_;
  BertInput<T, B> input_;
  std::vector<std::int32_t> lengths_;
  Ids lengths_view_;
  std::size_t Bn_ = 0, Tn_ = 0;
  bool kept_ = false;
};

// A sentence-transformers model folder as one object: WordPiece tokenizer + BertEncoder, texts in,
// unit vectors out (what sentence-transformers' encode() returns).
class SentenceEncoder {
 public:
  explicit SentenceEncoder(const std::filesystem::path& dir)
      : tokenizer_(text::WordPieceTokenizer::from_folder(dir)), encoder_(BertEncoder<>::load(dir)) {
    tokenizer_.set_max_length(encoder_.config().max_seq_length);
  }

  const text::WordPieceTokenizer& tokenizer() const noexcept { return tokenizer_; }
  BertEncoder<>& encoder() noexcept { return encoder_; }
  std::size_t dim() const noexcept { return encoder_.config().d_model; }

  // Embeddings of texts, row-major (texts.size(), dim()), in batches of batch_size padded to their longest.
  std::vector<float> embed(std::span<const std::string> texts, std::size_t batch_size = 32) {
    if (batch_size == 0) fail<InvalidArgument>("SentenceEncoder::embed: batch_size must be positive");
    std::vector<float> out(texts.size() * dim());
    for (std::size_t i = 0; i < texts.size(); i += batch_size) {
      const auto chunk = texts.subspan(i, std::min(batch_size, texts.size() - i));
      auto batch = tokenizer_.encode_batch(chunk);
      const TensorView<backend::cpu, std::int32_t> ids(batch.ids.data(), Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> types(batch.type_ids.data(),
                                                         Shape{batch.batch, batch.length});
      const TensorView<backend::cpu, std::int32_t> lengths(batch.lengths.data(), Shape{batch.batch});
      const auto emb = encoder_.encode({.ids = ids, .type_ids = types, .lengths = lengths});
      std::copy(emb.data(), emb.data() + emb.numel(), out.begin() + static_cast<std::ptrdiff_t>(i * dim()));
    }
    return out;
  }

 private:
  text::WordPieceTokenizer tokenizer_;
  BertEncoder<> encoder_;
};

}  // namespace p4lm
