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
// Assembled from the modules of nn/, no kernel of its own: h0 = LN0(word[ids] + position[t] +
// token_type[type]) (nn::Embedding + the token types + nn::LayerNorm, embeddings.*), then one
// nn::Block per layer, post-norm (placement::PostNorm), bound to the parameters by name:
//   res2 = x + Attention(x)     attention.self.{query,key,value}, attention.output.dense;
//                               bidirectional, keys past lengths[b] masked; one (3C, C) product
//                               where the three tensors are adjacent in the allocation, else three
//   ln1  = LN1(res2)            attention.output.LayerNorm
//   res3 = ln1 + MLP(ln1)       intermediate.dense, exact-erf GELU, output.dense
//   ln2  = LN2(res3)  -> out    output.LayerNorm
//
// Memory: parameters in one nn::ParameterSet (one allocation, gradients in another, each a named
// Parameter view with Hugging Face's names and order); activations in one workspace that only grows.
// forward() keeps every layer's activations for backward(); encode() (inference) runs all layers
// through one layer's buffers, its output ln2 aliased to its input (ln2 is written after x's last read).
// Padding positions are computed but never attended to and never pooled, so they get no gradient.
// backward() reads the ids, token types and inputs_embeds that forward() was given: keep them alive.

#include <algorithm>
#include <array>
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
#include "p4lm/nn/block.hpp"
#include "p4lm/nn/embedding.hpp"
#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/nn/workspace.hpp"
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
  using Norm = nn::LayerNorm<B, T>;
  using Attn = nn::Attention<B, attention::Bidirectional, T>;
  using Mlp = nn::MLP<B, nn::activation::GeluErf, T>;
  using Layer = nn::Block<B, Norm, Attn, Mlp, T, nn::placement::PostNorm>;

  explicit BertEncoder(BertConfig config) : config_(config), set_(specs(config_), "BertEncoder") { bind(); }

  BertEncoder(const BertEncoder& other) : BertEncoder(other.config_) { set_.copy_values_from(other.set_); }
  // Moving keeps every module's pointer valid: the parameter records and buffers move with the set.
  BertEncoder(BertEncoder&&) noexcept = default;
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
    for (const auto& p : set_.parameters()) {
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
    auto params = set_.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto v = file.read_f32(names[i]);
      std::transform(v.begin(), v.end(), params[i].value.data(), [](float x) { return static_cast<T>(x); });
    }
  }

  // BERT's initialisation: weights N(0, std), biases 0, LayerNorm gains 1.
  void init_random(Rng& rng, double std = 0.02) {
    for (auto& p : set_.parameters()) {
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
  std::span<Parameter<T>> parameters() noexcept { return set_.parameters(); }
  std::span<const Parameter<T>> parameters() const noexcept { return set_.parameters(); }
  Parameter<T>& parameter(std::string_view name) { return set_[name]; }
  std::size_t num_parameters() const noexcept { return set_.numel(); }
  void zero_grad() { set_.zero_grad(); }

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
  // Hugging Face's names, in its order (checkpoints and optimizer state key on them).
  static std::vector<ParameterSpec> specs(const BertConfig& c) {
    c.validate();
    const std::size_t C = c.d_model, F = c.d_ff;
    std::vector<ParameterSpec> s{{"embeddings.word_embeddings.weight", {c.vocab_size, C}, true},
                                 {"embeddings.position_embeddings.weight", {c.max_positions, C}, true},
                                 {"embeddings.token_type_embeddings.weight", {c.type_vocab_size, C}, true}};
    auto add = [&](std::vector<ParameterSpec> more) { s.insert(s.end(), more.begin(), more.end()); };
    add(Norm::specs("embeddings.LayerNorm", C));
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      const std::string p = "encoder.layer." + std::to_string(l) + ".";
      for (const char* w : {"query", "key", "value"})
        s.push_back({p + "attention.self." + w + ".weight", {C, C}, true});
      for (const char* w : {"query", "key", "value"})
        s.push_back({p + "attention.self." + w + ".bias", {C}, false});
      add(nn::Linear<B, T>::specs(p + "attention.output.dense", C, C, true));
      add(Norm::specs(p + "attention.output.LayerNorm", C));
      add(nn::Linear<B, T>::specs(p + "intermediate.dense", C, F, true));
      add(nn::Linear<B, T>::specs(p + "output.dense", F, C, true));
      add(Norm::specs(p + "output.LayerNorm", C));
    }
    return s;
  }

  // The modules, bound to the set's parameters by name.
  void bind() {
    using Lin = nn::Linear<B, T>;
    const double eps = config_.layer_norm_eps;
    const std::size_t H = config_.n_heads;
    embed_ = {&set_["embeddings.word_embeddings.weight"], &set_["embeddings.position_embeddings.weight"]};
    types_ = &set_["embeddings.token_type_embeddings.weight"];
    embed_norm_ = Norm::bind(set_, "embeddings.LayerNorm", eps);
    const std::size_t C = config_.d_model;
    layers_.clear();
    fused_layers_.clear();
    qkv_.clear();
    qkv_parts_.clear();
    qkv_.reserve(2 * config_.n_layers);  // the fused Linears point at these records: no reallocation
    bool fusable = true;
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const std::string p = "encoder.layer." + std::to_string(l) + ".";
      Layer layer;
      layer.attn = Attn::split({H, H, C / H, 0.0}, Lin::bind(set_, p + "attention.self.query", true),
                               Lin::bind(set_, p + "attention.self.key", true),
                               Lin::bind(set_, p + "attention.self.value", true),
                               Lin::bind(set_, p + "attention.output.dense", true));
      layer.norm1 = Norm::bind(set_, p + "attention.output.LayerNorm", eps);
      layer.mlp =
          Mlp{Lin::bind(set_, p + "intermediate.dense", true), Lin::bind(set_, p + "output.dense", true)};
      layer.norm2 = Norm::bind(set_, p + "output.LayerNorm", eps);
      layers_.push_back(layer);
      // The same layer with one (3C, C) q/k/v product, where query, key and value (weights, and
      // biases) are adjacent in the allocation: no alignment padding between them, as at MiniLM's
      // width (C x C and C both multiples of 16). Other widths keep the split products.
      std::array<Parameter<T, B>*, 6> parts{};
      for (std::size_t i = 0; i < 6; ++i)
        parts[i] = &set_[p + "attention.self." + std::array{"query", "key", "value"}[i % 3] +
                         (i < 3 ? ".weight" : ".bias")];
      auto adjacent = [&](std::size_t i) {
        return parts[i + 1]->value.data() == parts[i]->value.data() + parts[i]->value.numel() &&
               parts[i + 2]->value.data() == parts[i + 1]->value.data() + parts[i + 1]->value.numel();
      };
      fusable = fusable && adjacent(0) && adjacent(3);
      if (!fusable) continue;
      const auto w = parts[0], b = parts[3];
      qkv_.push_back({p + "attention.self.qkv.weight", View(w->value.data(), Shape{3 * C, C}),
                      View(w->grad.data(), Shape{3 * C, C}), true, true});
      qkv_.push_back({p + "attention.self.qkv.bias", View(b->value.data(), Shape{3 * C}),
                      View(b->grad.data(), Shape{3 * C}), true, false});
      qkv_parts_.push_back(parts);
      layer.attn = Attn::fused({H, H, C / H, 0.0}, Lin{&qkv_[qkv_.size() - 2], &qkv_.back()},
                               Lin::bind(set_, p + "attention.output.dense", true));
      fused_layers_.push_back(layer);
    }
    if (!fusable) fused_layers_.clear();
  }

  // Whether this pass runs the fused q/k/v product: possible (adjacent tensors) and query, key and
  // value frozen or trainable together (the fused records then take their flag).
  bool sync_fused() {
    if (fused_layers_.empty()) return false;
    for (std::size_t l = 0; l < config_.n_layers; ++l)
      for (std::size_t i = 0; i < 2; ++i) {
        const auto& parts = qkv_parts_[l];
        const bool t = parts[3 * i]->trainable;
        if (parts[3 * i + 1]->trainable != t || parts[3 * i + 2]->trainable != t) return false;
        qkv_[2 * l + i].trainable = t;
      }
    return true;
  }
  const std::vector<Layer>& layers() const { return fused_ ? fused_layers_ : layers_; }

  static std::string shape_str(const Shape& s) {
    std::string out;
    for (std::size_t d = 0; d < s.rank(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
    return out;
  }

  // Workspace allocator: counts on the first pass (base == nullptr), hands out views on the second.
  using Take = nn::Take<B, T>;  // the two-pass workspace allocator (nn/workspace.hpp)

  // The layer input of layer l: the embeddings' LayerNorm output, or the previous layer's output.
  const View& layer_input(std::size_t l) const { return l == 0 ? h0_ : Layer::output(acts_[l - 1]); }

  // Carves the workspace for (Bn, Tn); keep: one set of activations per layer, else one shared set
  // whose output (ln2, written last in a post-norm block) is the layer input h0 itself.
  void layout(std::size_t Bn, std::size_t Tn, bool keep) {
    const std::size_t C = config_.d_model, N = Bn * Tn;
    for (int pass = 0; pass < 2; ++pass) {
      Take take{pass ? work_.data() : nullptr};
      e_ = take({Bn, Tn, C});
      h0_ = take({Bn, Tn, C});
      mean0_ = take({N});
      rstd0_ = take({N});
      pooled_ = take({Bn, C});
      out_ = take({Bn, C});
      acts_.clear();
      for (std::size_t l = 0; l < (keep ? config_.n_layers : 1); ++l)
        acts_.push_back(layers()[l].layout(take, Bn, Tn, Tn));
      if (!pass && work_.numel() < take.off) work_.resize(Shape{take.off});
    }
    if (!keep) {
      acts_.front().ln2 = h0_;
      acts_.resize(config_.n_layers, acts_.front());
    }
    hidden_ = Layer::output(acts_.back());
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
    fused_ = sync_fused();
    layout(Bn, Tn, keep);
    kept_ = keep;
    Bn_ = Bn, Tn_ = Tn;
    input_ = in;
    lengths_.assign(Bn, static_cast<std::int32_t>(Tn));
    if (in.lengths.data() != nullptr) std::copy(in.lengths.data(), in.lengths.data() + Bn, lengths_.begin());
    pass_ = {};
    pass_.options.causal = false;
    pass_.options.key_lengths = Ids(lengths_.data(), Shape{Bn});

    // Embeddings: word (or the given vectors, as a prefix of the whole sequence) + position + token
    // type, then LayerNorm.
    const bool given = in.inputs_embeds.data() != nullptr;
    embed_.forward(e_, given ? in.inputs_embeds : View{}, given ? Ids{} : in.ids);
    for (std::size_t r = 0; r < N; ++r) {
      const std::size_t t = in.type_ids.data() ? static_cast<std::size_t>(in.type_ids.data()[r]) : 0;
      const T* w = types_->value.data() + t * C;
      T* y = e_.data() + r * C;
      for (std::size_t c = 0; c < C; ++c) y[c] += w[c];
    }
    embed_norm_.forward(h0_, mean0_, rstd0_, e_);

    for (std::size_t l = 0; l < config_.n_layers; ++l) layers()[l].forward(acts_[l], layer_input(l), pass_);

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

  void backward_impl(const View& demb, const View& dhidden) {
    if (!kept_) fail<UsageError>("BertEncoder::backward: needs forward(), not encode(), before it");
    if (sync_fused() != fused_)
      fail<UsageError>("BertEncoder::backward: query/key/value frozen or unfrozen since forward()");
    const std::size_t Bn = Bn_, Tn = Tn_, C = config_.d_model, N = Bn * Tn;
    const bool has_demb = demb.data() != nullptr, has_dh = dhidden.data() != nullptr;
    if (has_demb) expect_shape("BertEncoder::backward: demb", demb.shape(), Shape{Bn, C});
    if (has_dh) expect_shape("BertEncoder::backward: dhidden", dhidden.shape(), Shape{Bn, Tn, C});
    View dx, de, dpool;
    typename Layer::Scratch scratch;
    for (int pass = 0; pass < 2; ++pass) {
      Take take{pass ? dwork_.data() : nullptr};
      dx = take({Bn, Tn, C});
      de = take({Bn, Tn, C});
      dpool = take({Bn, C});
      scratch = layers().front().layout_scratch(take, Bn, Tn);
      if (!pass && dwork_.numel() < take.off) dwork_.resize(Shape{take.off});
    }

    // Through the normalisation and the mean: d hidden rows = d pooled / n on valid rows, 0 on padding.
    if (has_dh)
      std::copy(dhidden.data(), dhidden.data() + N * C, dx.data());
    else
      fill(dx, T(0));
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

    // Each block turns d (its output) into d (its input) in place.
    for (std::size_t l = config_.n_layers; l-- > 0;)
      layers()[l].backward(dx, acts_[l], layer_input(l), pass_, scratch);

    // h0 = LN0(e), e = word (or inputs_embeds) + position + token type
    fill(de, T(0));
    embed_norm_.backward(de, dx, e_, mean0_, rstd0_, scratch.norm);
    if (input_.inputs_embeds.data() != nullptr) {
      dinput_storage_.resize(Shape{Bn, Tn, C});
      dinput_ = dinput_storage_.view();
      embed_.backward(dinput_, de, Ids{});
    } else {
      embed_.backward(View{}, de, input_.ids);
      dinput_ = {};
    }
    if (types_->trainable)
      for (std::size_t r = 0; r < N; ++r) {
        const std::size_t t =
            input_.type_ids.data() ? static_cast<std::size_t>(input_.type_ids.data()[r]) : 0;
        T* w = types_->grad.data() + t * C;
        const T* g = de.data() + r * C;
        for (std::size_t c = 0; c < C; ++c) w[c] += g[c];
      }
  }

  BertConfig config_;
  nn::ParameterSet<B, T> set_;
  nn::Embedding<B, T> embed_;
  Parameter<T, B>* types_ = nullptr;
  Norm embed_norm_;
  std::vector<Layer> layers_, fused_layers_;  // split q/k/v; fused (empty when not adjacent)
  std::vector<Parameter<T, B>> qkv_;          // per layer: the fused (3C, C) weight and (3C) bias views
  std::vector<std::array<Parameter<T, B>*, 6>> qkv_parts_;  // their query/key/value weights, biases
  bool fused_ = false;
  Tensor<B, T> work_, dwork_, dinput_storage_;
  std::vector<typename Layer::Acts> acts_;
  View e_, h0_, mean0_, rstd0_, pooled_, out_, hidden_, dinput_;
  typename Attn::Pass pass_;
  BertInput<T, B> input_;
  std::vector<std::int32_t> lengths_;
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
