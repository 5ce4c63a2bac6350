#pragma once
// Loading and saving causal LMs.
//
//   auto llama = p4lm::load_llama2c_model(p4lm::data_path("tiny-lm/stories260K/stories260K.bin"));
//   auto gpt2  = p4lm::load_hf_gpt2("gpt2/");          // HF folder (config.json + model.safetensors)
//   p4lm::save_checkpoint("run/ckpt.safetensors", model, &optimizer, {{"data_position", "123"}});
//   auto again = p4lm::load_checkpoint<p4lm::GPT2LM<>>("run/ckpt.safetensors", &optimizer);
//   auto any   = p4lm::load_any_lm(path);               // std::variant<GPT2LM<>, LlamaLM<>>
//
// p4lm's own checkpoints are safetensors files: the parameters under their model names (values in
// the model's element type, bit-exact), the optimizer's moments as optimizer.m/<name> and
// optimizer.v/<name> for the parameters it holds moments for (AdamW::has_state: the trainable ones;
// files written before that also hold the frozen ones', which loading ignores), and in the metadata:
// format "p4lm", checkpoint version, the ModelConfig as JSON, the names of frozen parameters, the
// optimizer's step count and options, and any caller entries (data position, RNG state, ...). Files
// are written atomically.
//
// Errors name the file and the tensor (missing tensor, wrong shape, truncated file, a NaN or
// infinite value: io/finite.hpp's check runs on every tensor loaded).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/rng.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/finite.hpp"
#include "p4lm/io/llama2c.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/arch.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/nn/adamw.hpp"

namespace p4lm {

inline constexpr const char* checkpoint_format = "p4lm";
inline constexpr int checkpoint_version = 1;

// ---- llama2.c ----

// The ModelConfig of a llama2.c .bin file (header only).
inline ModelConfig llama2c_model_config(const io::Llama2cConfig& c) {
  ModelConfig m;
  m.arch = "llama";
  m.vocab_size = static_cast<std::size_t>(c.vocab_size);
  m.d_model = static_cast<std::size_t>(c.dim);
  m.n_layers = static_cast<std::size_t>(c.n_layers);
  m.n_heads = static_cast<std::size_t>(c.n_heads);
  m.n_kv_heads = static_cast<std::size_t>(c.n_kv_heads);
  m.d_ff = static_cast<std::size_t>(c.hidden_dim);
  m.max_seq = static_cast<std::size_t>(c.seq_len);
  m.norm_eps = 1e-5;  // run.c's rmsnorm
  m.rope_theta = 10000.0;
  m.tied_head = c.shared_classifier;
  return m;
}

// A llama2.c checkpoint (run.c's legacy format) as a Llama CausalLM.
inline LlamaLM<float> load_llama2c_model(const std::filesystem::path& path) {
  const auto ckpt = io::load_llama2c(path);
  LlamaLM<float> model(llama2c_model_config(ckpt.config));
  const auto& cfg = model.config();
  auto put = [&](const std::string& name, const io::Llama2cWeight& w, std::size_t layer, bool stacked) {
    auto dst = model.parameter(name).value;
    const std::size_t n = dst.numel();
    if (w.data.size() != (stacked ? cfg.n_layers * n : n))
      fail<ShapeError>(path.string(), ": weight '", w.name, "' has ", w.data.size(), " values, the model's '",
                       name, "' needs ", n, stacked ? " per layer" : "");
    std::copy(w.data.begin() + static_cast<std::ptrdiff_t>(layer * n),
              w.data.begin() + static_cast<std::ptrdiff_t>((layer + 1) * n), dst.data());
  };
  put("tok_embeddings.weight", ckpt.at("token_embedding"), 0, false);
  const std::pair<const char*, const char*> per_layer[] = {
      {"rms_att", "attention_norm.weight"}, {"wq", "attention.wq.weight"},
      {"wk", "attention.wk.weight"},        {"wv", "attention.wv.weight"},
      {"wo", "attention.wo.weight"},        {"rms_ffn", "ffn_norm.weight"},
      {"w1", "feed_forward.w1.weight"},     {"w2", "feed_forward.w2.weight"},
      {"w3", "feed_forward.w3.weight"}};
  for (std::size_t l = 0; l < cfg.n_layers; ++l)
    for (const auto& [file_name, model_name] : per_layer)
      put(arch::Llama::layer(l, model_name), ckpt.at(file_name), l, true);
  put("norm.weight", ckpt.at("rms_final"), 0, false);
  if (!cfg.tied_head) put("output.weight", ckpt.at("wcls"), 0, false);
  return model;
}

// ---- Hugging Face GPT-2 ----

// The ModelConfig of a Hugging Face GPT-2 config.json.
inline ModelConfig hf_gpt2_model_config(const std::filesystem::path& config_json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(io::read_file(config_json));
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(config_json, 0, "", std::string("not valid JSON: ") + e.what());
  }
  ModelConfig c;
  c.arch = "gpt2";
  try {
    c.vocab_size = j.at("vocab_size").get<std::size_t>();
    c.d_model = j.at("n_embd").get<std::size_t>();
    c.n_layers = j.at("n_layer").get<std::size_t>();
    c.n_heads = j.at("n_head").get<std::size_t>();
    c.n_kv_heads = c.n_heads;
    c.max_seq = j.at("n_positions").get<std::size_t>();
    c.d_ff =
        j.contains("n_inner") && !j["n_inner"].is_null() ? j["n_inner"].get<std::size_t>() : 4 * c.d_model;
    c.norm_eps = j.value("layer_norm_epsilon", 1e-5);
    const auto act = j.value("activation_function", std::string("gelu_new"));
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      fail<InvalidArgument>(config_json.string(), ": activation_function '", act,
                            "' is not supported (p4lm's GPT-2 uses the tanh GELU, gelu_new)");
    if (j.value("scale_attn_by_inverse_layer_idx", false) || j.value("reorder_and_upcast_attn", false))
      fail<InvalidArgument>(config_json.string(),
                            ": scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported");
  } catch (const nlohmann::json::exception& e) {
    fail<InvalidArgument>(config_json.string(), ": ", e.what());
  }
  c.validate(config_json.string());
  return c;
}

// HF GPT-2 weights (model.safetensors, names with or without the `transformer.` prefix; Conv1D
// matrices stored (in, out) are transposed to p4lm's (out, in)). `path` is the file or its folder;
// config.json is read from the same folder.
inline GPT2LM<float> load_hf_gpt2(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const fs::path file = fs::is_directory(path) ? path / "model.safetensors" : path;
  const fs::path config_json =
      file.parent_path().empty() ? fs::path("config.json") : file.parent_path() / "config.json";
  if (!fs::exists(config_json))
    fail<IoError>(config_json.string(), ": missing (a Hugging Face GPT-2 needs config.json beside ",
                  file.string(), ")");
  GPT2LM<float> model(hf_gpt2_model_config(config_json));
  const auto st = io::SafetensorsFile::open(file);
  for (auto& p : model.parameters()) {
    const std::string prefixed = "transformer." + p.name;
    const std::string& name = st.contains(p.name) ? p.name : prefixed;
    if (!st.contains(name))
      throw ParseError(file, 0, p.name,
                       "tensor is missing (looked for '" + p.name + "' and '" + prefixed + "')");
    const bool conv1d = p.name.ends_with("c_attn.weight") || p.name.ends_with("c_proj.weight") ||
                        p.name.ends_with("c_fc.weight");
    std::vector<std::int64_t> want(p.value.shape().begin(), p.value.shape().end());
    if (conv1d) std::swap(want[0], want[1]);
    st.expect(name, want);
    const auto values = st.read_f32(name);
    if (conv1d) {
      const std::size_t in = static_cast<std::size_t>(want[0]), out = static_cast<std::size_t>(want[1]);
      for (std::size_t i = 0; i < in; ++i)
        for (std::size_t o = 0; o < out; ++o) p.value.data()[o * in + i] = values[i * out + o];
    } else {
      std::copy(values.begin(), values.end(), p.value.data());
    }
  }
  return model;
}

// ---- p4lm checkpoints ----

namespace detail {
template <class T>
constexpr io::Dtype dtype_of() {
  return std::is_same_v<T, double> ? io::Dtype::F64 : io::Dtype::F32;
}
}  // namespace detail

// Writes parameters (+ optimizer state) atomically: every parameter, the frozen names, the config
// when the model has one, the optimizer's options, step and moments. `extra` entries go into the
// metadata (the Trainer adds its own there). Any optimizer with options(), steps(), has_state(), m()
// and v().
template <class Model, class Opt>
void write_checkpoint(const std::filesystem::path& path, Model& model, Opt* optimizer,
                      const std::map<std::string, std::string>& extra) {
  using T = typename std::remove_cvref_t<Model>::value_type;
  std::vector<io::SafetensorsEntry> entries;
  nlohmann::json frozen = nlohmann::json::array();
  const auto params = model.parameters();
  auto bytes = [](const auto& view) { return std::as_bytes(std::span<const T>(view.data(), view.numel())); };
  for (const auto& p : params) {
    entries.push_back({p.name, detail::dtype_of<T>(),
                       std::vector<std::int64_t>(p.value.shape().begin(), p.value.shape().end()),
                       bytes(p.value)});
    if (!p.trainable) frozen.push_back(p.name);
  }
  std::map<std::string, std::string> meta = extra;
  meta["format"] = checkpoint_format;
  meta["p4lm_checkpoint"] = std::to_string(checkpoint_version);
  if constexpr (requires { to_json(model.config()); }) meta["config"] = to_json(model.config()).dump();
  meta["frozen"] = frozen.dump();
  if (optimizer) {
    auto& opt = *optimizer;
    const auto& o = opt.options();
    meta["optimizer"] = nlohmann::json{
        {"type", "adamw"},
        {"step", opt.steps()},
        {"lr", o.lr},
        {"beta1", o.beta1},
        {"beta2", o.beta2},
        {"eps", o.eps},
        {"weight_decay", o.weight_decay},
        {"max_grad_norm",
         o.max_grad_norm}}.dump();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      if (!opt.has_state(i)) continue;
      const std::vector<std::int64_t> shape(p.value.shape().begin(), p.value.shape().end());
      entries.push_back(
          {"optimizer.m/" + p.name, detail::dtype_of<T>(), shape, bytes(opt.m(i, p.value.shape()))});
      entries.push_back(
          {"optimizer.v/" + p.name, detail::dtype_of<T>(), shape, bytes(opt.v(i, p.value.shape()))});
    }
  }
  io::save_safetensors(path, entries, meta);
}

template <class Model, class T = typename Model::value_type>
void save_checkpoint(const std::filesystem::path& path, const Model& model, AdamW<T>* optimizer = nullptr,
                     const std::map<std::string, std::string>& extra = {}) {
  write_checkpoint(path, model, optimizer, extra);
}

// The ModelConfig stored in a p4lm checkpoint.
inline ModelConfig checkpoint_model_config(const io::SafetensorsFile& st) {
  const auto& meta = st.metadata();
  const auto format = meta.find("format");
  const auto config = meta.find("config");
  if (format == meta.end() || format->second != checkpoint_format || config == meta.end())
    throw ParseError(st.path(), 0, "__metadata__",
                     "not a p4lm checkpoint (needs format \"p4lm\" and a config)");
  try {
    return model_config_from_json(nlohmann::json::parse(config->second), st.path().string());
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(st.path(), 0, "__metadata__", std::string("config is not valid JSON: ") + e.what());
  }
}

namespace detail {
template <class T>
void read_exact(const io::SafetensorsFile& st, const std::string& name, TensorView<backend::cpu, T> dst) {
  const std::vector<std::int64_t> shape(dst.shape().begin(), dst.shape().end());
  const auto& view = st.expect(name, shape);
  if (view.dtype == dtype_of<T>()) {
    if (!view.data.empty()) std::memcpy(dst.data(), view.data.data(), view.data.size());  // bit-exact
    io::require_finite<T>(std::span<const T>(dst.data(), dst.numel()), st.path(), name);
  } else {
    const auto values = st.read_f32(name);
    std::copy(values.begin(), values.end(), dst.data());
  }
}
}  // namespace detail

// Loads a p4lm checkpoint into an existing model of the same config (and optimizer state if asked
// and present); returns the file's metadata (caller entries included).
template <class Model, class T = typename Model::value_type>
std::map<std::string, std::string> load_checkpoint_into(Model& model, const std::filesystem::path& path,
                                                        AdamW<T>* optimizer = nullptr) {
  const auto st = io::SafetensorsFile::open(path);
  const auto config = checkpoint_model_config(st);
  if (const auto diff = differences(config, model.config()); !diff.empty()) {
    std::string fields;
    for (const auto& d : diff) fields += (fields.empty() ? "" : ", ") + d;
    fail<InvalidArgument>(path.string(), ": checkpoint config differs from the model's in ", fields,
                          " (checkpoint vs model)");
  }
  auto params = model.parameters();
  std::vector<std::string> frozen;
  if (const auto it = st.metadata().find("frozen"); it != st.metadata().end())
    frozen = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
  for (auto& p : params) {
    detail::read_exact<T>(st, p.name, p.value);
    p.trainable = std::find(frozen.begin(), frozen.end(), p.name) == frozen.end();
  }
  if (optimizer) {
    const auto it = st.metadata().find("optimizer");
    if (it == st.metadata().end())
      throw ParseError(path, 0, "__metadata__", "no optimizer state in this checkpoint");
    const auto o = nlohmann::json::parse(it->second);
    *optimizer =
        AdamW<T>(std::span<const Parameter<T>>(params.data(), params.size()),
                 AdamWOptions{o.at("lr").get<double>(), o.at("beta1").get<double>(),
                              o.at("beta2").get<double>(), o.at("eps").get<double>(),
                              o.at("weight_decay").get<double>(), o.at("max_grad_norm").get<double>()});
    optimizer->set_steps(o.at("step").get<std::int64_t>());
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!optimizer->has_state(i)) continue;
      detail::read_exact<T>(st, "optimizer.m/" + params[i].name, optimizer->m(i, params[i].value.shape()));
      detail::read_exact<T>(st, "optimizer.v/" + params[i].name, optimizer->v(i, params[i].value.shape()));
    }
  }
  return st.metadata();
}

// A new model from a p4lm checkpoint.
template <class Model, class T = typename Model::value_type>
Model load_checkpoint(const std::filesystem::path& path, AdamW<T>* optimizer = nullptr) {
  Model model(checkpoint_model_config(io::SafetensorsFile::open(path)));
  load_checkpoint_into(model, path, optimizer);
  return model;
}

// ---- any format ----

using AnyLM = std::variant<GPT2LM<float>, LlamaLM<float>>;

// A new model of config.arch ("gpt2" or "llama") with random weights (init_random).
inline AnyLM random_any_lm(const ModelConfig& config, Rng& rng) {
  auto init = [&](auto model) -> AnyLM { return model.init_random(rng), AnyLM(std::move(model)); };
  return config.arch == "gpt2" ? init(GPT2LM<float>(config)) : init(LlamaLM<float>(config));
}

// Loads a llama2.c .bin, a p4lm checkpoint, or a Hugging Face GPT-2 (file or folder), by content.
inline AnyLM load_any_lm(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail<IoError>(path.string(), ": no such file or folder");
  const fs::path file = fs::is_directory(path) ? path / "model.safetensors" : path;
  if (file.extension() == ".bin") return load_llama2c_model(file);
  const auto st = io::SafetensorsFile::open(file);
  if (const auto it = st.metadata().find("format");
      it != st.metadata().end() && it->second == checkpoint_format) {
    const auto config = checkpoint_model_config(st);
    if (config.arch == "gpt2") return load_checkpoint<GPT2LM<float>>(file);
    return load_checkpoint<LlamaLM<float>>(file);
  }
  return load_hf_gpt2(file);
}

}  // namespace p4lm
