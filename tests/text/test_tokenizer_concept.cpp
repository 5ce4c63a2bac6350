#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <p4lm/text/gpt2_tokenizer.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>
#include <p4lm/text/tokenizer.hpp>

using p4lm::text::Gpt2Tokenizer;
using p4lm::text::Llama2cTokenizer;
using p4lm::text::Tokenizer;

namespace {

struct NoDecode {
  std::vector<std::int32_t> encode(std::string_view) const { return {}; }
  std::size_t vocab_size() const { return 0; }
  std::optional<std::int32_t> bos_id() const { return {}; }
  std::optional<std::int32_t> eos_id() const { return {}; }
};

template <class Tok>
Tok load();
template <>
Gpt2Tokenizer load<Gpt2Tokenizer>() {
  return Gpt2Tokenizer::bundled();
}
template <>
Llama2cTokenizer load<Llama2cTokenizer>() {
  return Llama2cTokenizer::bundled();
}

// Generic code written against the concept only.
template <Tokenizer Tok>
std::string round_trip(const Tok& tok, std::string_view text) {
  return tok.decode(tok.encode(text));
}

}  // namespace

TEST_CASE("both tokenizers satisfy the Tokenizer concept", "[text][concept]") {
  STATIC_REQUIRE(p4lm::text::check_tokenizer<Gpt2Tokenizer>());
  STATIC_REQUIRE(p4lm::text::check_tokenizer<Llama2cTokenizer>());
  STATIC_REQUIRE(!Tokenizer<NoDecode>);
  STATIC_REQUIRE(!Tokenizer<int>);
}

TEMPLATE_TEST_CASE("Tokenizer concept: generic round trip and special ids", "[text][concept]", Gpt2Tokenizer,
                   Llama2cTokenizer) {
  const auto tok = load<TestType>();
  for (const std::string text : {"", "Once upon a time, Lily saw a big red ball.", "  two  spaces\n",
                                 "caf\xc3\xa9 \xe2\x9c\x93 \xff\xfe bytes"}) {
    CHECK(round_trip(tok, text) == text);
  }
  REQUIRE(tok.bos_id().has_value());
  REQUIRE(tok.eos_id().has_value());
  CHECK(static_cast<std::size_t>(*tok.bos_id()) < tok.vocab_size());
  CHECK(static_cast<std::size_t>(*tok.eos_id()) < tok.vocab_size());
  for (const auto id : tok.encode("ids are in range")) CHECK(static_cast<std::size_t>(id) < tok.vocab_size());
}
