// SmolLM2-135M-Instruct from GGUF (load_gguf_model) against transformers in float64 on the same
// dequantized weights (scripts/fixtures/make_smollm2_fixture.py): last-position logits of 3 prompts
// and a 64-token greedy continuation. Skipped when the model cache has no SmolLM2.
//
// Relative error of a logit vector: max_i |p4lm_i - ref_i| / max_i |ref_i| over the stored entries
// (the 64 largest logits and 1024 fixed random ids), i.e. the worst error on the scale of the logits;
// an element-wise ratio is meaningless for logits near 0.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/model_cache.hpp>
#include <p4lm/model/generate.hpp>
#include <p4lm/model/gguf_model.hpp>

#include "skip.hpp"

using namespace p4lm;

namespace {

GgufModel& smollm2() {
  static GgufModel m = load_gguf_model(*smollm2_path());
  return m;
}

nlohmann::json reference() {
  std::ifstream in(std::string(P4LM_TEST_FIXTURES_DIR) + "/model/smollm2_reference.json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("SmolLM2 from GGUF: hyperparameters", "[model][smollm2]") {
  if (!smollm2_path())
    P4LM_SKIP("SmolLM2 not in the model cache " << model_cache_dir() << ": run scripts/fetch-models.sh");
  const auto& c = smollm2().model.config();
  CHECK(c.n_layers == 30);
  CHECK(c.d_model == 576);
  CHECK(c.n_heads == 9);
  CHECK(c.kv_heads() == 3);
  CHECK(c.d_ff == 1536);
  CHECK(c.vocab_size == 49152);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.norm_eps == Approx(1e-5).epsilon(1e-6));
  CHECK(c.tied_head);
  CHECK(smollm2().tokenizer.eos_id() == 2);
}

TEST_CASE("SmolLM2 from GGUF: logits within 1e-3 relative error of transformers (float64)",
          "[model][smollm2]") {
  if (!smollm2_path())
    P4LM_SKIP("SmolLM2 not in the model cache " << model_cache_dir() << ": run scripts/fetch-models.sh");
  auto& m = smollm2();
  const auto ref = reference();
  for (const auto& p : ref["prompts"]) {
    const auto text = p["text"].get<std::string>();
    INFO(text);
    auto ids = p["ids"].get<std::vector<std::int32_t>>();
    CHECK(m.tokenizer.encode(text) == ids);
    m.model.forward({.ids = TensorView<backend::cpu, std::int32_t>(ids.data(), Shape{1, ids.size()})});
    const auto last = m.model.last_logits();
    const float* logits = last.data();
    double worst = 0;
    auto compare = [&](const char* ids_key, const char* values_key) {
      const auto which = p[ids_key].get<std::vector<std::size_t>>();
      const auto want = p[values_key].get<std::vector<double>>();
      for (std::size_t i = 0; i < which.size(); ++i)
        worst = std::max(worst, std::abs(logits[which[i]] - want[i]));
    };
    compare("top_ids", "top_logits");
    compare("sample_ids", "sample_logits");
    const double rel = worst / p["max_abs_logit"].get<double>();
    std::cout << "SmolLM2 logits vs transformers (" << ids.size() << " tokens): max abs error " << worst
              << ", relative " << rel << '\n';
    CHECK(rel < 1e-3);
    // The best token is the reference's.
    const auto best = std::max_element(logits, logits + m.model.config().vocab_size) - logits;
    CHECK(best == p["top_ids"][0].get<std::ptrdiff_t>());
  }
}

TEST_CASE("SmolLM2 from GGUF: 64-token greedy continuation identical to transformers", "[model][smollm2]") {
  if (!smollm2_path())
    P4LM_SKIP("SmolLM2 not in the model cache " << model_cache_dir() << ": run scripts/fetch-models.sh");
  auto& m = smollm2();
  const auto ref = reference()["greedy"];
  const std::vector<std::vector<std::int32_t>> prompts{ref["prompt_ids"].get<std::vector<std::int32_t>>()};
  const auto out = generate(m.model, prompts, {.max_new_tokens = 64, .temperature = 0});
  INFO("p4lm: " << m.tokenizer.decode(out.tokens[0]));
  INFO("transformers: " << ref["text"].get<std::string>());
  CHECK(out.tokens[0] == ref["new_ids"].get<std::vector<std::int32_t>>());
}
