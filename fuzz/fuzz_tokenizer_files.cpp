// The tokenizers' file loaders on arbitrary bytes: the first byte picks llama2.c's tokenizer .bin,
// GPT-2's encoder.json + vocab.bpe (split at the first NUL byte), or a WordPiece tokenizer.json;
// whatever loads must then encode and decode without crashing.
#include <string>
#include <string_view>
#include <vector>

#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>
#include <p4lm/text/wordpiece_tokenizer.hpp>

#include "fuzz_support.hpp"

namespace {
template <class Tok>
void exercise(const Tok& tok) {
  const auto ids = tok.encode("Once upon a time, \xC3\xA9t\xC3\xA9 \xF0\x9F\x8E\xAC heat");
  p4lm_fuzz::expect_clean([&] { (void)tok.decode(ids); });
  const std::vector<std::int32_t> odd{0, 1, 2, 3, -1, 1 << 30};
  p4lm_fuzz::expect_clean([&] { (void)tok.decode(odd); });
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body = p4lm_fuzz::as_text(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      const auto path = p4lm_fuzz::write("tok.bin", body);
      p4lm_fuzz::expect_clean([&] { exercise(p4lm::text::Llama2cTokenizer::from_file(path)); });
      break;
    }
    case 1: {
      const auto nul = body.find('\0');
      const auto encoder = p4lm_fuzz::write("encoder.json", body.substr(0, nul));
      const auto merges = p4lm_fuzz::write(
          "vocab.bpe", nul == std::string_view::npos ? std::string_view() : body.substr(nul + 1));
      p4lm_fuzz::expect_clean([&] { exercise(p4lm::text::Gpt2Tokenizer::from_files(encoder, merges)); });
      break;
    }
    default: {
      const auto path = p4lm_fuzz::write("tokenizer.json", body);
      p4lm_fuzz::expect_clean([&] { exercise(p4lm::text::WordPieceTokenizer::from_file(path)); });
    }
  }
  return 0;
}
