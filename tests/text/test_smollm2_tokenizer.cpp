// SmolLM2's tokenizer from the GGUF metadata against Hugging Face tokenizers on 1000 texts
// (scripts/fixtures/make_smollm2_tokenizer_fixture.py), and the ChatML prompt format.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/model_cache.hpp>
#include <p4lm/io/gguf.hpp>
#include <p4lm/text/chat_template.hpp>
#include <p4lm/text/gguf_tokenizer.hpp>
#include <p4lm/text/tokenizer.hpp>

#include "skip.hpp"

using p4lm::text::ChatTemplate;
using p4lm::text::Gpt2Tokenizer;

static_assert(p4lm::text::check_tokenizer<Gpt2Tokenizer>());

namespace {

std::vector<std::string> pieces_of(std::string_view text) {
  std::vector<std::string> out;
  p4lm::text::smollm_pretokenize(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

}  // namespace

TEST_CASE("smollm pre-tokenizer: digits alone, then GPT-2's pattern on the rest", "[smollm2][tokenizer]") {
  using V = std::vector<std::string>;
  CHECK(pieces_of("abc 123") == V{"abc", " ", "1", "2", "3"});
  CHECK(pieces_of("a  1b") == V{"a", "  ", "1", "b"});  // the spaces end their own segment
  CHECK(pieces_of("x ٣ y") == V{"x", " ", "٣", " y"});
  CHECK(pieces_of("it's 2001!") == V{"it", "'s", " ", "2", "0", "0", "1", "!"});
  CHECK(pieces_of("").empty());
}

TEST_CASE("SmolLM2 tokenizer: ids identical to HF tokenizers on 1000 texts", "[smollm2][tokenizer]") {
  const auto path = p4lm::smollm2_path();
  if (!path)
    P4LM_SKIP("SmolLM2 not in the model cache " << p4lm::model_cache_dir()
                                                << ": run scripts/fetch-models.sh");
  const p4lm::GgufFile f(*path);
  const auto tok = p4lm::text::gguf_tokenizer(f);
  CHECK(tok.vocab_size() == 49152);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.pretokenizer() == p4lm::text::Pretokenizer::smollm);

  std::ifstream in(std::string(P4LM_TEST_FIXTURES_DIR) + "/text/smollm2_tokenizer.jsonl");
  REQUIRE(in);
  std::string line;
  std::size_t n = 0, mismatches = 0, round_trip_failures = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const auto text = j["text"].get<std::string>();
    const auto want = j["ids"].get<std::vector<std::int32_t>>();
    const auto got = tok.encode(text);
    if (got != want && ++mismatches <= 5) {
      INFO("text: " << text);
      CHECK(got == want);
    }
    if (std::find(got.begin(), got.end(), 0) == got.end())  // unknown (id 0) loses bytes
      round_trip_failures += tok.decode(got) != text;
    ++n;
  }
  CHECK(n >= 1000);
  CHECK(mismatches == 0);
  CHECK(round_trip_failures == 0);
}

TEST_CASE("SmolLM2 tokenizer: special tokens and the ChatML prompt", "[smollm2][tokenizer]") {
  const auto path = p4lm::smollm2_path();
  if (!path)
    P4LM_SKIP("SmolLM2 not in the model cache " << p4lm::model_cache_dir()
                                                << ": run scripts/fetch-models.sh");
  const p4lm::GgufFile f(*path);
  const auto tok = p4lm::text::gguf_tokenizer(f);
  CHECK(tok.encode("<|im_start|>user\nHi<|im_end|>") == std::vector<std::int32_t>{1, 4093, 198, 26843, 2});
  CHECK(tok.encode_ordinary("<|im_end|>") != std::vector<std::int32_t>{2});  // as plain text
  CHECK(tok.decode(std::vector<std::int32_t>{1, 4093}) == "<|im_start|>user");

  const auto chat = ChatTemplate::from_gguf(f);
  CHECK(chat.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  CHECK(chat.format({{"user", "Hello"}}) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  CHECK(chat.format({{"system", "Be brief."}, {"user", "Hi"}}, false) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST_CASE("gguf_tokenizer: refuses vocabularies it cannot run", "[smollm2][tokenizer]") {
  const p4lm::GgufFile f(std::string(P4LM_TEST_FIXTURES_DIR) + "/gguf/all_types_v3.gguf");  // no tokenizer
  CHECK_THROWS_WITH(p4lm::text::gguf_tokenizer(f),
                    Catch::Contains("all_types_v3.gguf") && Catch::Contains("tokenizer.ggml.model"));
}
