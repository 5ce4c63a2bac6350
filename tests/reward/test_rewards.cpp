// The four rewards over the real MiniLM encoder (skipped without it): batched scores, the precision
// and personalization aggregations, save/load and the refusal of a file of another type or CF width, bad
// rollouts.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "p4lm/reward/training.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using namespace p4lm;

namespace {
fs::path minilm_dir() {
  const char* env = std::getenv("P4LM_MODELS");
  const fs::path models =
      env && *env ? fs::path(env) : fs::path(P4LM_TEST_FIXTURES_DIR) / ".." / ".." / "models";
  return models / "all-minilm-l6-v2";
}
}  // namespace

TEST_CASE("split_sentences cuts after . ! ? followed by a space", "[reward][precision]") {
  CHECK(reward::split_sentences("Heat (1995) grips. You love crime!  Watch it?") ==
        std::vector<std::string>{"Heat (1995) grips.", "You love crime!", "Watch it?"});
  CHECK(reward::split_sentences("no stop at the end") == std::vector<std::string>{"no stop at the end"});
  CHECK(reward::split_sentences("  ").empty());
}

TEST_CASE("Rewards score batches, save and load, refuse other types and widths", "[reward][models]") {
  if (!fs::exists(minilm_dir() / "model.safetensors"))
    P4LM_SKIP("all-minilm-l6-v2 not fetched: run scripts/fetch-models.sh or set P4LM_MODELS");
  auto f = std::make_shared<reward::TextFeatures>(minilm_dir());
  const std::size_t d = f->dim();
  reward::Precision<> prec(f, reward::MlpHead<float>(reward::Precision<>::head_width(d), 8, 1, 1));
  reward::Appeal<> app(f, reward::MlpHead<float>(d, 8, 1, 2));
  reward::Personalization<> pers(f,
                                 reward::MlpHead<float>(reward::Personalization<>::head_width(d), 8, 1, 3));
  reward::PreferenceRelevance<backend::cpu, 4> rel(f, reward::MlpHead<float>(d, 8, 4, 4));
  const std::vector<float> user = {0.5f, -1.f, 0.25f, 2.f};
  const std::vector<reward::Rollout> b = {{.pitch = "Heat is a crime thriller. You will love it.",
                                           .premise = "Heat (1995). Crime, Thriller.",
                                           .profile = "Loves crime.",
                                           .user_embedding = user},
                                          {.pitch = "A gentle romance.",
                                           .premise = "Heat (1995). Crime, Thriller.",
                                           .profile = "Loves crime.",
                                           .user_embedding = user}};

  // Precision: the minimum over sentences of σ(logit) (independent recomputation per sentence).
  const auto p = prec.score(b);
  const auto z = prec.logits({std::string(b[0].premise), std::string(b[0].premise)},
                             {"Heat is a crime thriller.", "You will love it."});
  CHECK(p[0] ==
        Approx(std::min(1 / (1 + std::exp(-double(z[0]))), 1 / (1 + std::exp(-double(z[1]))))).epsilon(1e-6));
  CHECK(p[0] >= 0);
  CHECK(p[0] <= 1);

  // Scores of a batch equal scores one at a time.
  const auto a = app.score(b);
  CHECK(a[1] == Approx(app.score(std::span(b).subspan(1))[0]).epsilon(1e-5));
  // Personalization: log Σ exp over the sentences' scores, each sentence cross-encoded with the profile.
  const auto ps = pers.score(b);
  REQUIRE(ps.size() == 2);
  const auto rows =
      f->pair_features({"Loves crime.", "Loves crime."}, {"Heat is a crime thriller.", "You will love it."});
  const auto c = pers.head().forward(rows.data(), 2);
  CHECK(ps[0] == Approx(std::log(std::exp(double(c[0])) + std::exp(double(c[1])))).epsilon(1e-5));
  CHECK(ps[1] == Approx(pers.score(std::span(b).subspan(1))[0]).epsilon(1e-6));
  const auto r = rel.score(b);
  CHECK(r[0] != r[1]);

  const auto dir = fs::temp_directory_path() / "p4lm_test_rewards";
  fs::create_directories(dir);
  app.save(dir / "appeal.safetensors");
  rel.save(dir / "rel.safetensors");
  pers.save(dir / "personalization.safetensors");
  CHECK(reward::Personalization<>::load(dir / "personalization.safetensors", f).score(b) == ps);
  // A whole-pitch personalization head of older versions: same width, other features.
  reward::save_head(dir / "old_personalization.safetensors", "personalization", 0, pers.head());
  CHECK_THROWS_WITH(reward::Personalization<>::load(dir / "old_personalization.safetensors", f),
                    Catch::Contains("old_personalization.safetensors") && Catch::Contains("pitch_score") &&
                        Catch::Contains("retrain"));
  CHECK(reward::Appeal<>::load(dir / "appeal.safetensors", f).score(b) == a);
  CHECK(reward::PreferenceRelevance<backend::cpu, 4>::load(dir / "rel.safetensors", f).score(b) == r);
  CHECK_THROWS_WITH(
      reward::Personalization<>::load(dir / "appeal.safetensors", f),
      Catch::Contains("appeal.safetensors") && Catch::Contains("type") && Catch::Contains("'appeal'"));
  // A precision head of another input width (the sentence-feature heads of older p4lm versions).
  reward::save_head(dir / "old_precision.safetensors", "precision", 0,
                    reward::MlpHead<float>(3 * d, 8, 1, 1));
  CHECK_THROWS_WITH(
      reward::Precision<>::load(dir / "old_precision.safetensors", f),
      Catch::Contains("old_precision.safetensors") && Catch::Contains("'in'") && Catch::Contains("retrain"));
  CHECK_THROWS_WITH((reward::PreferenceRelevance<backend::cpu, 8>::load(dir / "rel.safetensors", f)),
                    Catch::Contains("cf_width") && Catch::Contains("width 4"));

  // Bad rollouts: the field is named, nothing is scored.
  std::vector<reward::Rollout> bad = b;
  bad[1].premise = {};
  CHECK_THROWS_WITH(prec.score(bad), Catch::Contains("rollout 1") && Catch::Contains("'premise'"));
  bad = b;
  bad[0].user_embedding = std::span(user).subspan(0, 3);
  CHECK_THROWS_WITH(rel.score(bad), Catch::Contains("'user_embedding'") && Catch::Contains("3 numbers"));
  fs::remove_all(dir);
}
