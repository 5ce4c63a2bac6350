// io::load_llama2c on arbitrary bytes, and the ModelConfig it implies validated.
#include <p4lm/io/llama2c.hpp>
#include <p4lm/model/arch.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = p4lm_fuzz::write("model.bin", p4lm_fuzz::as_text(data, size));
  p4lm_fuzz::expect_clean([&] {
    const auto ckpt = p4lm::io::load_llama2c(path);
    const auto& c = ckpt.config;
    p4lm::ModelConfig m;
    m.vocab_size = static_cast<std::size_t>(c.vocab_size), m.d_model = static_cast<std::size_t>(c.dim);
    m.n_layers = static_cast<std::size_t>(c.n_layers), m.n_heads = static_cast<std::size_t>(c.n_heads);
    m.n_kv_heads = static_cast<std::size_t>(c.n_kv_heads), m.d_ff = static_cast<std::size_t>(c.hidden_dim);
    m.max_seq = static_cast<std::size_t>(c.seq_len), m.tied_head = c.shared_classifier;
    m.validate(path.string());
  });
  return 0;
}
