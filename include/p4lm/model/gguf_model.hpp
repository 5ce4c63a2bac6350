#pragma once
// A Llama-architecture causal LM from a GGUF file (SmolLM2-135M-Instruct from the model cache):
// the weights dequantized to fp32 into p4lm::LlamaLM<>, the tokenizer from the metadata, the ChatML
// template.
//
//   auto m = p4lm::load_gguf_model(*p4lm::smollm2_path());
//   auto ids = m.tokenizer.encode(m.chat.format({{"user", "Recommend a movie about space"}}));
//   p4lm::Generator gen(m.model);  ... stop at m.tokenizer.eos_id() (<|im_end|>)
//
// Hyperparameters (llama.* keys): block_count, embedding_length, feed_forward_length,
// attention.head_count, attention.head_count_kv, rope.freq_base, attention.layer_norm_rms_epsilon,
// context_length (max_seq), vocabulary size from the token embedding. Tensors map one to one:
//   token_embd -> tok_embeddings, blk.L.attn_norm -> layers.L.attention_norm, attn_q/k/v/output ->
//   attention.wq/wk/wv/wo, ffn_norm -> ffn_norm, ffn_gate/down/up -> feed_forward.w1/w2/w3,
//   output_norm -> norm, output -> output (absent: tied head).
// GGUF's Q and K rows are already in the adjacent-pair RoPE order that p4lm's rope uses (llama.cpp's
// converter permutes Hugging Face's rotate-half layout into it), so they are copied as they are; the
// logits test against transformers (tests/model/test_smollm2.cpp) checks this.
// Errors: another architecture, partial rotary embeddings, a missing tensor or a shape that does not
// match the hyperparameters each give a ParseError/ShapeError naming the file and the key or tensor.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/gguf.hpp"
#include "p4lm/model/arch.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/text/chat_template.hpp"
#include "p4lm/text/gguf_tokenizer.hpp"

namespace p4lm {

// The ModelConfig of a GGUF Llama file (metadata only).
inline ModelConfig gguf_model_config(const io::GgufFile& f) {
  const auto arch = f.get_or<std::string>("general.architecture", "");
  if (arch != "llama")
    throw ParseError(f.path(), 0, "general.architecture",
                     "architecture '" + arch + "' is not supported (only \"llama\")");
  auto u = [&](const std::string& key) { return f.get<std::size_t>("llama." + key); };
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = u("block_count");
  c.d_model = u("embedding_length");
  c.d_ff = u("feed_forward_length");
  c.n_heads = u("attention.head_count");
  c.n_kv_heads = f.has("llama.attention.head_count_kv") ? u("attention.head_count_kv") : c.n_heads;
  c.max_seq = f.get_or<std::size_t>("llama.context_length", 2048);
  c.rope_theta = f.get_or<double>("llama.rope.freq_base", 10000.0);
  c.norm_eps = f.get_or<double>("llama.attention.layer_norm_rms_epsilon", 1e-5);
  if (!f.has_tensor("token_embd.weight"))
    throw ParseError(f.path(), 0, "token_embd.weight", "tensor missing (the token embedding)");
  const auto emb = f.tensor("token_embd.weight").shape();
  if (emb.size() != 2) throw ParseError(f.path(), 0, "token_embd.weight", "is not a matrix");
  c.vocab_size = emb[0];
  c.tied_head = !f.has_tensor("output.weight");
  if (c.n_heads == 0 || c.d_model % c.n_heads != 0)
    throw ParseError(f.path(), 0, "llama.attention.head_count", "does not divide embedding_length");
  const auto rope_dims = f.get_or<std::size_t>("llama.rope.dimension_count", c.head_dim());
  if (rope_dims != c.head_dim())
    throw ParseError(f.path(), 0, "llama.rope.dimension_count",
                     std::to_string(rope_dims) + " rotary dimensions of " + std::to_string(c.head_dim()) +
                         ": partial rotary embeddings are not supported");
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw ParseError(f.path(), 0, "llama.*", e.what());
  }
  return c;
}

// Copies the file's weights (dequantized) into a model built from gguf_model_config(f).
inline void load_gguf_weights(const io::GgufFile& f, LlamaLM<float>& model) {
  const auto& cfg = model.config();
  auto put = [&](const std::string& file_name, const std::string& model_name) {
    if (!f.has_tensor(file_name)) throw ParseError(f.path(), 0, file_name, "tensor missing");
    auto dst = model.parameter(model_name).value;
    const auto shape = f.tensor(file_name).shape();
    std::vector<std::size_t> want(dst.shape().begin(), dst.shape().end());
    if (shape != want)
      fail<ShapeError>(f.path().string(), ": tensor '", file_name, "': shape ", Shape::from(shape),
                       ", the model's '", model_name, "' needs ", dst.shape());
    f.dequantize_into(file_name, {dst.data(), dst.numel()});
  };
  put("token_embd.weight", "tok_embeddings.weight");
  const std::pair<const char*, const char*> per_layer[] = {
      {"attn_norm", "attention_norm.weight"}, {"attn_q", "attention.wq.weight"},
      {"attn_k", "attention.wk.weight"},      {"attn_v", "attention.wv.weight"},
      {"attn_output", "attention.wo.weight"}, {"ffn_norm", "ffn_norm.weight"},
      {"ffn_gate", "feed_forward.w1.weight"}, {"ffn_down", "feed_forward.w2.weight"},
      {"ffn_up", "feed_forward.w3.weight"}};
  for (std::size_t l = 0; l < cfg.n_layers; ++l)
    for (const auto& [file_name, model_name] : per_layer)
      put("blk." + std::to_string(l) + "." + file_name + ".weight", arch::Llama::layer(l, model_name));
  put("output_norm.weight", "norm.weight");
  if (!cfg.tied_head) put("output.weight", "output.weight");
}

struct GgufModel {
  LlamaLM<float> model;
  text::Gpt2Tokenizer tokenizer;
  text::ChatTemplate chat;
};

// The model, its tokenizer and its chat template from one GGUF file.
inline GgufModel load_gguf_model(const std::filesystem::path& path) {
  const io::GgufFile f(path);
  auto tokenizer = text::gguf_tokenizer(f);
  const auto config = gguf_model_config(f);
  if (tokenizer.vocab_size() != config.vocab_size)
    throw ParseError(path, 0, "tokenizer.ggml.tokens",
                     std::to_string(tokenizer.vocab_size()) + " tokens for an embedding of " +
                         std::to_string(config.vocab_size) + " rows");
  GgufModel m{LlamaLM<float>(config), std::move(tokenizer), text::ChatTemplate::from_gguf(f)};
  load_gguf_weights(f, m.model);
  return m;
}

}  // namespace p4lm
