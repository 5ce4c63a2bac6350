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

#include <cstddef>
#include <string>
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

  // Throws InvalidArgument naming the field at fault.
  void validate() const {
    auto need = [](bool ok, const char* what) {
      if (!ok) fail<InvalidArgument>("ModelConfig: ", what);
    };
    need(arch == "gpt2" || arch == "llama", "arch must be \"gpt2\" or \"llama\"");
    need(vocab_size > 0 && d_model > 0 && n_layers > 0 && n_heads > 0 && d_ff > 0 && max_seq > 0,
         "vocab_size, d_model, n_layers, n_heads, d_ff and max_seq must be > 0");
    need(d_model % n_heads == 0, "d_model must be a multiple of n_heads");
    need(n_heads % kv_heads() == 0, "n_kv_heads must divide n_heads");
    need(arch != "llama" || head_dim() % 2 == 0, "Llama head size (d_model / n_heads) must be even (RoPE)");
    need(arch != "gpt2" || (kv_heads() == n_heads && tied_head),
         "GPT-2 has n_kv_heads == n_heads and a tied head");
    need(norm_eps > 0, "norm_eps must be > 0");
  }

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

inline nlohmann::json to_json(const ModelConfig& c) {
  return {{"arch", c.arch},          {"vocab_size", c.vocab_size},
          {"d_model", c.d_model},    {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},    {"n_kv_heads", c.kv_heads()},
          {"d_ff", c.d_ff},          {"max_seq", c.max_seq},
          {"norm_eps", c.norm_eps},  {"rope_theta", c.rope_theta},
          {"tied_head", c.tied_head}};
}

inline ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  try {
    c.arch = j.at("arch").get<std::string>();
    c.vocab_size = j.at("vocab_size").get<std::size_t>();
    c.d_model = j.at("d_model").get<std::size_t>();
    c.n_layers = j.at("n_layers").get<std::size_t>();
    c.n_heads = j.at("n_heads").get<std::size_t>();
    c.n_kv_heads = j.value("n_kv_heads", c.n_heads);
    c.d_ff = j.at("d_ff").get<std::size_t>();
    c.max_seq = j.at("max_seq").get<std::size_t>();
    c.norm_eps = j.value("norm_eps", 1e-5);
    c.rope_theta = j.value("rope_theta", 10000.0);
    c.tied_head = j.value("tied_head", true);
  } catch (const nlohmann::json::exception& e) {
    fail<InvalidArgument>("ModelConfig: ", e.what());
  }
  c.validate();
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
