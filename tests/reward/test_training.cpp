// Reward-head training with checkpoints (RewardTrainOptions::out): the same head as without files, a
// finished head is read back instead of trained again, options that do not change the result may
// change on a rerun, one that does is refused, listing it (synthetic features: no encoder needed).
// Preference relevance's figures refuse a test user the CF model does not know (needs MiniLM).

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "p4lm/core/rng.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/reward/training.hpp"
#include "skip.hpp"

namespace reward_training_test {

// A head fitted by fit_head on fixed random pairs (chosen = rejected + a direction), as train_* do.
std::vector<float> fit_training_head(const p4lm::reward::RewardTrainOptions& o, const nlohmann::json& fp) {
  constexpr std::size_t width = 6, n = 40;
  p4lm::Rng rng(11);
  std::vector<float> w(n * width), l(n * width);
  for (std::size_t k = 0; k < w.size(); ++k) {
    l[k] = static_cast<float>(rng.normal());
    w[k] = l[k] + (k % width == 0 ? 1.0f : 0.0f);
  }
  p4lm::reward::MlpHead<float> head(width, o.hidden, 1, o.seed);
  p4lm::reward::BradleyTerryObjective<float> objective(w, l, width, o.batch, o.seed);
  p4lm::reward::fit_head(head, objective, o, "appeal", fp);
  std::vector<float> values;
  for (const auto& p : head.parameters())
    values.insert(values.end(), p.value.data(), p.value.data() + p.value.numel());
  return values;
}

}  // namespace reward_training_test

TEST_CASE("reward heads: checkpoints resume to the same head and refuse changed options",
          "[reward][resume]") {
  namespace fs = std::filesystem;
  using reward_training_test::fit_training_head;
  const fs::path out = fs::temp_directory_path() / ("p4lm_test_reward_resume_" + std::to_string(::getpid()));
  fs::remove_all(out);
  p4lm::reward::RewardTrainOptions o{.steps = 30, .batch = 4, .hidden = 8, .out = out, .checkpoint_every = 7};
  const auto fp = p4lm::reward::reward_fingerprint(o, "data", "encoder");
  const auto straight = fit_training_head({.steps = 30, .batch = 4, .hidden = 8}, fp);  // no files

  // With checkpoints: the same head (kills in between: tests/reward/test_kill_resume.cpp).
  const auto whole = fit_training_head(o, fp);
  CHECK(whole == straight);
  CHECK(fs::exists(out / "appeal.checkpoint.safetensors"));
  CHECK(fs::exists(out / "appeal_metrics.jsonl"));
  const std::string metrics = p4lm::io::read_file(out / "appeal_metrics.jsonl");
  // A finished head is read back, not trained again: same parameters, same metrics file.
  CHECK(fit_training_head(o, fp) == straight);
  CHECK(p4lm::io::read_file(out / "appeal_metrics.jsonl") == metrics);
  // Free to change: max_test, progress, checkpoint_every.
  auto free = o;
  free.max_test = 7, free.checkpoint_every = 3;
  CHECK(fit_training_head(free, p4lm::reward::reward_fingerprint(free, "data", "encoder")) == straight);
  // Changing the result: refused, listing the option with both values.
  auto changed = o;
  changed.lr = 1e-3;
  CHECK_THROWS_WITH(fit_training_head(changed, p4lm::reward::reward_fingerprint(changed, "data", "encoder")),
                    Catch::Contains("lr (checkpoint 0.002, this run 0.001)"));
  // resume = false starts over with the new options.
  changed.resume = false;
  CHECK(fit_training_head(changed, p4lm::reward::reward_fingerprint(changed, "data", "encoder")) != straight);
  fs::remove_all(out);
}

TEST_CASE("preference relevance figures: a test user without a CF row is an error, not a smaller sample",
          "[reward][relevance]") {
  namespace fs = std::filesystem;
  const char* env = std::getenv("P4LM_MODELS");
  const fs::path minilm =
      (env && *env ? fs::path(env) : fs::path(P4LM_TEST_FIXTURES_DIR) / ".." / ".." / "models") /
      "all-minilm-l6-v2";
  if (!fs::exists(minilm / "model.safetensors"))
    P4LM_SKIP("all-minilm-l6-v2 not fetched: run scripts/fetch-models.sh or set P4LM_MODELS");
  auto f = std::make_shared<p4lm::reward::TextFeatures>(minilm);
  p4lm::reward::PreferenceRelevance<p4lm::backend::cpu, 16> r(f,
                                                              p4lm::reward::MlpHead<float>(f->dim(), 8, 16));
  p4lm::cf::Embeddings<16> cf(2, 2);
  cf.user_ids = {1, 2}, cf.item_ids = {10, 11};
  std::vector<p4lm::data::RelevanceExample> v{{1, 10, "A heist film.", std::vector<float>(16, 0.5f)},
                                              {2, 11, "A space horror.", std::vector<float>(16, -0.5f)}};
  CHECK(p4lm::reward::relevance_figures(r, v, cf).at("test_examples") == 2);
  v.push_back({9, 11, "A cartoon.", std::vector<float>(16, 0.1f)});
  CHECK_THROWS_WITH(p4lm::reward::relevance_figures(r, v, cf),
                    Catch::Contains("user 9 (example for movie 11) has no row in the CF model (2 users)"));
}
