// The bundled tokenizers' encoders on arbitrary bytes (invalid UTF-8 included): GPT-2's byte-level
// BPE must give back exactly the input; llama2.c's sentencepiece-style BPE must not crash and must
// decode to text; and decoding arbitrary ids is either text or a p4lm::Error.
#include <cstdlib>
#include <string>
#include <vector>

#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto gpt2 = p4lm::text::Gpt2Tokenizer::bundled();
  static const auto llama = p4lm::text::Llama2cTokenizer::bundled();
  const std::string text(p4lm_fuzz::as_text(data, size));
  const auto ids = gpt2.encode(text);
  if (gpt2.decode(ids) != text) std::abort();  // byte-level BPE is lossless by construction
  const auto pieces = llama.encode(text, {.bos = true, .eos = true});
  (void)llama.decode(pieces);
  std::vector<std::int32_t> raw;
  for (std::size_t i = 0; i + 1 < size; i += 2)
    raw.push_back(static_cast<std::int32_t>(data[i] | data[i + 1] << 8) - 256);
  p4lm_fuzz::expect_clean([&] { (void)gpt2.decode(raw); });
  p4lm_fuzz::expect_clean([&] { (void)llama.decode(raw); });
  return 0;
}
