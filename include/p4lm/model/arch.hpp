#pragma once
// Transformer architectures as compile-time policies, and the runtime shape of a model.
//
//   arch::GPT2   LayerNorm (with bias), learned positions, GELU MLP, biases, tied LM head.
//                Parameter names are Hugging Face's GPT-2 names without the `transformer.` prefix
//                (wte.weight, h.0.attn.c_attn.weight, ...), so HF checkpoints map one to one.
//   arch::Llama  RMSNorm, RoPE, SwiGLU MLP, grouped-query attention, no biases, tied or untied head.
//                Names follow llama2.c's export of Meta's layout (tok_embeddings.weight,
//                layers.0.attention.wq.weight, ..., norm.weight, output.weight).
//
// Every weight matrix is stored (out, in), the layout of ops::matmul_forward; loaders transpose
// formats that differ (HF GPT-2's Conv1D stores (in, out)).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm {

// The runtime shape of a causal LM. Fields mirror llama2.c's header and HF's GPT-2 config.
struct ModelConfig {
  std::string arch = "llama";  // "gpt2" or "llama": must match the Arch policy of the model type
  std::size_t vocab_size = 0;  // embedding rows
  std::size_t d_model = 0;     // width C
  std::size_t n_layers = 0;
  std::size_t n_heads = 0;
  std::size_t n_kv_heads = 0;  // 0 means n_heads (no grouping); GPT-2 always has n_heads
  std::size_t d_ff = 0;        // MLP hidden width (GPT-2: 4 C)
  std::size_t max_seq = 0;     // longest sequence (GPT-2: rows of wpe; Llama: cache capacity bound)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  // Llama only
  bool tied_head = true;        // LM head shares the token embedding (GPT-2: always)

  std::size_t kv_heads() const noexcept { return n_kv_heads ? n_kv_heads : n_heads; }
  std::size_t head_dim() const noexcept { return n_heads ? d_model / n_heads : 0; }

  // Upper bounds far beyond any model p4lm can train or load on one machine; what exceeds them is a
  // corrupt or mistyped config, refused by name instead of failing later as std::bad_alloc.
  static constexpr std::size_t max_vocab_size = std::size_t{1} << 24;  // 16.8M (Llama 3: 128k)
  static constexpr std::size_t max_d_model = std::size_t{1} << 16;     // 65536 (Llama 3 405B: 16384)
  static constexpr std::size_t max_n_layers = 1024;                    // (Llama 3 405B: 126)
  static constexpr std::size_t max_n_heads = 1024;
  static constexpr std::size_t max_d_ff = std::size_t{1} << 20;  // (Llama 3 405B: 53248)
  static constexpr std::size_t max_seq_limit = std::size_t{1} << 20;
  static constexpr std::size_t max_parameters = std::size_t{1} << 36;  // 68.7G: 275 GB of fp32

  // Parameters of the architecture (embeddings, layers, head); no overflow for any config whose
  // fields are within the bounds above.
  std::size_t parameter_count() const noexcept {
    const std::size_t C = d_model, F = d_ff, D = head_dim(), L = n_layers;
    const bool gpt2 = arch == "gpt2";
    const std::size_t attn = n_heads * D * C * 2 + kv_heads() * D * C * 2;
    const std::size_t mlp = gpt2 ? 2 * F * C : 3 * F * C;
    const std::size_t embed = vocab_size * C * (tied_head ? 1 : 2) + (gpt2 ? max_seq * C : 0);
    return embed + L * (attn + mlp + 4 * C + F) + 2 * C;
  }

  // Throws InvalidArgument naming the field at fault (and `origin`, the file, when given).
  void validate(std::string_view origin = {}) const {
    auto need = [&](bool ok, const auto&... what) {
      if (!ok) fail<InvalidArgument>(origin, origin.empty() ? "" : ": ", "ModelConfig: ", what...);
    };
    need(arch == "gpt2" || arch == "llama", "arch must be \"gpt2\" or \"llama\", got \"", arch, "\"");
    const std::pair<const char*, std::pair<std::size_t, std::size_t>> sizes[] = {
        {"vocab_size", {vocab_size, max_vocab_size}},
        {"d_model", {d_model, max_d_model}},
        {"n_layers", {n_layers, max_n_layers}},
        {"n_heads", {n_heads, max_n_heads}},
        {"d_ff", {d_ff, max_d_ff}},
        {"max_seq", {max_seq, max_seq_limit}}};
    for (const auto& [field, value_max] : sizes)
      need(value_max.first >= 1 && value_max.first <= value_max.second, field, " must be in [1, ",
           value_max.second, "], got ", value_max.first);
    need(n_kv_heads <= n_heads, "n_kv_heads must be <= n_heads (", n_heads, "), got ", n_kv_heads);
    need(d_model % n_heads == 0, "d_model (", d_model, ") must be a multiple of n_heads (", n_heads, ")");
    need(n_heads % kv_heads() == 0, "n_kv_heads (", kv_heads(), ") must divide n_heads (", n_heads, ")");
    need(arch != "llama" || head_dim() % 2 == 0, "Llama head size (d_model / n_heads) must be even (RoPE)");
    need(arch != "gpt2" || (kv_heads() == n_heads && tied_head),
         "GPT-2 has n_kv_heads == n_heads and a tied head");
    need(std::isfinite(norm_eps) && norm_eps > 0, "norm_eps must be a finite number > 0, got ", norm_eps);
    need(std::isfinite(rope_theta) && rope_theta > 0, "rope_theta must be a finite number > 0, got ",
         rope_theta);
    need(parameter_count() <= max_parameters, "the shape has ", parameter_count(),
         " parameters, more than the limit of ", max_parameters);
  }

  // The fields in which two configs differ ("n_layers 2 vs 4"); n_kv_heads is compared resolved.
  friend std::vector<std::string> differences(const ModelConfig& a, const ModelConfig& b) {
    std::vector<std::string> out;
    auto field = [&](const char* name, const auto& x, const auto& y) {
      if (x == y) return;
      std::ostringstream os;
      os.precision(17);
      os << std::boolalpha << name << " " << x << " vs " << y;
      out.push_back(os.str());
    };
    field("arch", a.arch, b.arch);
    field("vocab_size", a.vocab_size, b.vocab_size);
    field("d_model", a.d_model, b.d_model);
    field("n_layers", a.n_layers, b.n_layers);
    field("n_heads", a.n_heads, b.n_heads);
    field("n_kv_heads", a.kv_heads(), b.kv_heads());
    field("d_ff", a.d_ff, b.d_ff);
    field("max_seq", a.max_seq, b.max_seq);
    field("norm_eps", a.norm_eps, b.norm_eps);
    field("rope_theta", a.rope_theta, b.rope_theta);
    field("tied_head", a.tied_head, b.tied_head);
    return out;
  }

  // Same shape: n_kv_heads 0 ("as many as n_heads") equals its resolved value.
  friend bool operator==(const ModelConfig& a, const ModelConfig& b) { return differences(a, b).empty(); }
};

inline nlohmann::json to_json(const ModelConfig& c) {
  return {{"arch", c.arch},          {"vocab_size", c.vocab_size},
          {"d_model", c.d_model},    {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},    {"n_kv_heads", c.kv_heads()},
          {"d_ff", c.d_ff},          {"max_seq", c.max_seq},
          {"norm_eps", c.norm_eps},  {"rope_theta", c.rope_theta},
          {"tied_head", c.tied_head}};
}

// `origin` (the file the JSON came from) prefixes every error.
inline ModelConfig model_config_from_json(const nlohmann::json& j, std::string_view origin = {}) {
  const std::string where = origin.empty() ? std::string() : std::string(origin) + ": ";
  // nlohmann turns -1 into 2^64 - 1 and 1.5 into 1 when asked for a size_t: take integers only.
  auto count = [&](const char* key) -> std::size_t {
    const auto& v = j.at(key);
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<std::int64_t>() < 0))
      fail<InvalidArgument>(where, "ModelConfig: ", key, " must be a non-negative integer, got ", v.dump());
    return v.get<std::size_t>();
  };
  ModelConfig c;
  try {
    if (!j.is_object()) fail<InvalidArgument>(where, "ModelConfig: expected a JSON object, got ", j.dump());
    c.arch = j.at("arch").get<std::string>();
    c.vocab_size = count("vocab_size");
    c.d_model = count("d_model");
    c.n_layers = count("n_layers");
    c.n_heads = count("n_heads");
    c.n_kv_heads = j.contains("n_kv_heads") ? count("n_kv_heads") : c.n_heads;
    c.d_ff = count("d_ff");
    c.max_seq = count("max_seq");
    c.norm_eps = j.value("norm_eps", 1e-5);
    c.rope_theta = j.value("rope_theta", 10000.0);
    c.tied_head = j.value("tied_head", true);
  } catch (const nlohmann::json::exception& e) {
    fail<InvalidArgument>(where, "ModelConfig: ", e.what());
  }
  c.validate(origin);
  return c;
}

namespace arch {

struct GPT2 {
  static constexpr const char* name = "gpt2";
  static constexpr bool layer_norm = true;         // LayerNorm with bias (else RMSNorm)
  static constexpr bool learned_positions = true;  // wpe (else RoPE)
  static constexpr bool gelu_mlp = true;           // GELU c_fc/c_proj (else SwiGLU w1/w3/w2)
  static constexpr bool biases = true;

  // Layer parameter names, in the order the model allocates them.
  static std::string layer(std::size_t l, const char* what) { return "h." + std::to_string(l) + "." + what; }

  static std::vector<ParameterSpec> parameters(const ModelConfig& c) {
    const std::size_t C = c.d_model, F = c.d_ff;
    std::vector<ParameterSpec> p{{"wte.weight", {c.vocab_size, C}, true},
                                 {"wpe.weight", {c.max_seq, C}, true}};
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      p.push_back({layer(l, "ln_1.weight"), {C}, false});
      p.push_back({layer(l, "ln_1.bias"), {C}, false});
      p.push_back({layer(l, "attn.c_attn.weight"), {3 * C, C}, true});
      p.push_back({layer(l, "attn.c_attn.bias"), {3 * C}, false});
      p.push_back({layer(l, "attn.c_proj.weight"), {C, C}, true});
      p.push_back({layer(l, "attn.c_proj.bias"), {C}, false});
      p.push_back({layer(l, "ln_2.weight"), {C}, false});
      p.push_back({layer(l, "ln_2.bias"), {C}, false});
      p.push_back({layer(l, "mlp.c_fc.weight"), {F, C}, true});
      p.push_back({layer(l, "mlp.c_fc.bias"), {F}, false});
      p.push_back({layer(l, "mlp.c_proj.weight"), {C, F}, true});
      p.push_back({layer(l, "mlp.c_proj.bias"), {C}, false});
    }
    p.push_back({"ln_f.weight", {C}, false});
    p.push_back({"ln_f.bias", {C}, false});
    return p;
  }
};

struct Llama {
  static constexpr const char* name = "llama";
  static constexpr bool layer_norm = false;
  static constexpr bool learned_positions = false;
  static constexpr bool gelu_mlp = false;
  static constexpr bool biases = false;

  static std::string layer(std::size_t l, const char* what) {
    return "layers." + std::to_string(l) + "." + what;
  }

  static std::vector<ParameterSpec> parameters(const ModelConfig& c) {
    const std::size_t C = c.d_model, F = c.d_ff, D = c.head_dim(), H = c.n_heads, KV = c.kv_heads();
    std::vector<ParameterSpec> p{{"tok_embeddings.weight", {c.vocab_size, C}, true}};
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      p.push_back({layer(l, "attention_norm.weight"), {C}, false});
      p.push_back({layer(l, "attention.wq.weight"), {H * D, C}, true});
      p.push_back({layer(l, "attention.wk.weight"), {KV * D, C}, true});
      p.push_back({layer(l, "attention.wv.weight"), {KV * D, C}, true});
      p.push_back({layer(l, "attention.wo.weight"), {C, H * D}, true});
      p.push_back({layer(l, "ffn_norm.weight"), {C}, false});
      p.push_back({layer(l, "feed_forward.w1.weight"), {F, C}, true});
      p.push_back({layer(l, "feed_forward.w2.weight"), {C, F}, true});
      p.push_back({layer(l, "feed_forward.w3.weight"), {F, C}, true});
    }
    p.push_back({"norm.weight", {C}, false});
    if (!c.tied_head) p.push_back({"output.weight", {c.vocab_size, C}, true});
    return p;
  }
};

}  // namespace arch

// What an architecture policy provides (see arch::GPT2 for the meaning of each member).
template <class A>
concept Architecture = requires(const ModelConfig& c, std::size_t l) {
  { A::name } -> std::convertible_to<const char*>;
  { A::layer_norm } -> std::convertible_to<bool>;
  { A::learned_positions } -> std::convertible_to<bool>;
  { A::gelu_mlp } -> std::convertible_to<bool>;
  { A::biases } -> std::convertible_to<bool>;
  { A::parameters(c) } -> std::same_as<std::vector<ParameterSpec>>;
  { A::layer(l, "x") } -> std::same_as<std::string>;
};

static_assert(Architecture<arch::GPT2> && Architecture<arch::Llama>);

}  // namespace p4lm
