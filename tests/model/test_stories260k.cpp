// The bundled stories260K (Karpathy's llama2.c model) through load_llama2c_model + Generator:
// greedy decoding from BOS must print exactly llama2.c run.c's output (data/tiny-lm/PROVENANCE.md).

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "p4lm/core/data_dir.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/text/llama2c_tokenizer.hpp"

using namespace p4lm;

namespace {
std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("stories260K greedy 200 steps prints llama2.c's expected text", "[model][llama][stories260k]") {
  auto model = load_llama2c_model(data_path("tiny-lm/stories260K/stories260K.bin"));
  const auto& c = model.config();
  CHECK(c.d_model == 64);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.kv_heads() == 4);
  CHECK(c.d_ff == 172);
  CHECK(c.vocab_size == 512);
  CHECK(c.tied_head);
  const auto tok = text::Llama2cTokenizer::bundled();
  // run.c: steps 200 from BOS, stops early if the model emits BOS again.
  const std::vector<std::vector<std::int32_t>> prompts{{text::Llama2cTokenizer::bos}};
  const auto out =
      generate(model, prompts, {.max_new_tokens = 200, .temperature = 0, .eos = text::Llama2cTokenizer::bos});
  std::vector<std::int32_t> ids{text::Llama2cTokenizer::bos};
  ids.insert(ids.end(), out.tokens[0].begin(), out.tokens[0].end());
  const std::string expected = read_text(data_path("tiny-lm/stories260K/expected_greedy_200steps.txt"));
  CHECK(tok.decode(ids) == expected);
  CHECK(out.logprobs[0].size() == out.tokens[0].size());
  for (float lp : out.logprobs[0]) CHECK(lp <= 0.0f);

  SECTION("the same prompt in a batch of different-length prompts decodes the same") {
    const std::vector<std::vector<std::int32_t>> batch{
        tok.encode("Once upon a time"), {text::Llama2cTokenizer::bos}, tok.encode("The cat sat")};
    const auto many =
        generate(model, batch, {.max_new_tokens = 200, .temperature = 0, .eos = text::Llama2cTokenizer::bos});
    CHECK(many.tokens[1] == out.tokens[0]);
  }
}
