// The RL stage on a tiny warm-started pitch run: files, metrics names, fixed evaluation pairs, the
// trained model loadable by PitchWriter, and a killed-and-resumed run equal to an uninterrupted one.

#include <catch2/catch.hpp>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../rl/tiny_pitch_run.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/pipeline/rl_stage.hpp"

using namespace p4lm;

namespace {

// Two components: the share of letters that are 'e', and whether the pitch ended.
pipeline::PitchRewardScores toy_reward(std::span<const pipeline::PitchToScore> batch) {
  pipeline::PitchRewardScores s;
  for (const auto& p : batch) {
    double e = 0, letters = 0;
    for (char ch : p.pitch)
      if (std::isalpha(static_cast<unsigned char>(ch))) letters += 1, e += ch == 'e';
    const double share = letters > 0 ? e / letters : 0;
    s.components["e_share"].push_back(share);
    s.components["ended"].push_back(p.ended ? 1 : 0);
    s.total.push_back(4 * share + (p.ended ? 0.5 : 0));
  }
  return s;
}

pipeline::RlConfig tiny_config(const std::filesystem::path& run, const std::filesystem::path& out) {
  pipeline::RlConfig c;
  *c.sft = run.string();
  *c.data = run.string();
  *c.out = out.string();
  *c.iterations = 4;
  *c.batch_size = 4;
  *c.mini_batch_size = 2;
  *c.ppo_epochs = 2;
  *c.learning_rate = 3e-3;
  *c.response.response_length = 6;
  *c.eval_every = 2;
  *c.eval_pairs = 2;
  *c.save_every = 2;
  *c.gold = false;  // the fixture is no full data build (the CLI test runs the judge)
  *c.progress = false;
  return c;
}

std::vector<nlohmann::json> read_rows(const std::filesystem::path& file) {
  std::vector<nlohmann::json> rows;
  io::for_each_jsonl(file, [&](const nlohmann::json& j, std::size_t) { rows.push_back(j); });
  return rows;
}

}  // namespace

TEST_CASE("rl stage: PPO on a tiny warm start writes metrics, curves, samples and the model",
          "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  const auto out = run.dir.path / "rl";
  const auto result = pipeline::run_rl(tiny_config(run.dir.path, out), toy_reward);
  CHECK(result.iterations == 4);
  for (const char* f : {"metrics.jsonl", "metrics.csv", "curves.svg", "samples.jsonl", "samples.md",
                        "state.safetensors", "policy.safetensors", "result.json"})
    CHECK(std::filesystem::exists(out / f));
  const auto rows = read_rows(out / "metrics.jsonl");
  REQUIRE(rows.size() == 5);  // the evaluation before training, then one row per iteration
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].at("iteration").get<double>() == double(i));
  for (const char* name : {"objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward",
                           "policy/approxkl", "policy/clipfrac", "val/clipfrac", "loss/policy", "loss/value",
                           "rewards/e_share/mean", "rewards/ended/mean"})
    CHECK(rows[3].contains(name));
  // Evaluations at 0, 2 and 4 on the same two validation pairs (user 13 with movies 101 and 103),
  // never on the test user's (12).
  for (std::size_t i : {0, 2, 4}) CHECK(rows[i].contains("eval/reward"));
  CHECK_FALSE(rows[1].contains("eval/reward"));
  const auto samples = read_rows(out / "samples.jsonl");
  REQUIRE(samples.size() == 6);
  for (std::size_t k = 0; k < samples.size(); ++k) {
    CHECK(samples[k].at("user_id") == 13);
    CHECK(samples[k].at("movie_id") == (k % 2 ? 103 : 101));
  }
  const std::string csv = io::read_file(out / "metrics.csv");
  CHECK(csv.starts_with("iteration,"));
  CHECK(csv.find("rewards/e_share/mean") != std::string::npos);
  const std::string svg = io::read_file(out / "curves.svg");
  CHECK(svg.find("objective/kl") != std::string::npos);
  CHECK(svg.find("rewards/e_share/mean") != std::string::npos);
  // The trained model is a pitch model again, and it moved away from the warm start.
  const auto writer = train::PitchWriter::load(out / "policy.safetensors");
  auto trained = rl::PitchPolicyLoader::open(out / "policy.safetensors").load<p4lm_test::kDim>();
  CHECK(std::vector<float>(trained.lm().parameters()[0].value.data(),
                           trained.lm().parameters()[0].value.data() + 16) !=
        std::vector<float>(run.lm.parameters()[0].value.data(), run.lm.parameters()[0].value.data() + 16));
}

TEST_CASE("rl stage: a killed and resumed run equals an uninterrupted one", "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  const auto whole = pipeline::run_rl(tiny_config(run.dir.path, run.dir.path / "whole"), toy_reward);
  auto first = tiny_config(run.dir.path, run.dir.path / "resumed");
  *first.iterations = 2;  // "killed" after the checkpoint at iteration 2
  pipeline::run_rl(first, toy_reward);
  const auto resumed = pipeline::run_rl(tiny_config(run.dir.path, run.dir.path / "resumed"), toy_reward);
  CHECK(resumed.iterations == 4);
  const auto a = read_rows(run.dir.path / "whole" / "metrics.jsonl");
  const auto b = read_rows(run.dir.path / "resumed" / "metrics.jsonl");
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (const char* name : {"objective/kl", "objective/scores", "loss/policy", "eval/reward"})
      if (a[i].contains(name)) CHECK(a[i].at(name) == b[i].at(name));
  CHECK(read_rows(run.dir.path / "whole" / "samples.jsonl") ==
        read_rows(run.dir.path / "resumed" / "samples.jsonl"));
}

TEST_CASE("rl stage: the policy-gradient algorithm; bad settings are named", "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  auto c = tiny_config(run.dir.path, run.dir.path / "pg");
  *c.algo = "pg";
  *c.rloo_k = 2;
  *c.iterations = 2;
  const auto r = pipeline::run_rl(c, toy_reward);
  CHECK(r.iterations == 2);
  CHECK(read_rows(run.dir.path / "pg" / "metrics.jsonl").size() == 3);

  *c.algo = "a2c";
  CHECK_THROWS_WITH(pipeline::run_rl(c, toy_reward), Catch::Contains("--algo: 'a2c', expected ppo or pg"));
  CHECK(pipeline::parse_reward_weights("precision=1,appeal=0.5") ==
        std::map<std::string, double>{{"appeal", 0.5}, {"precision", 1.0}});
  CHECK_THROWS_WITH(pipeline::parse_reward_weights("precision=x"), Catch::Contains("'precision=x'"));
  CHECK_THROWS_WITH(pipeline::parse_reward_weights("appeal=-1"), Catch::Contains(">= 0"));
}

TEST_CASE("rl stage: a train user without a CF embedding is an error, not a smaller prompt pool",
          "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  {
    std::ofstream profiles(run.dir.path / "profiles.jsonl", std::ios::app);
    profiles << nlohmann::json{{"user_id", 14}, {"text", "likes films"}, {"split", "train"}}.dump() << '\n';
  }
  CHECK_THROWS_WITH(pipeline::run_rl(tiny_config(run.dir.path, run.dir.path / "rl"), toy_reward),
                    Catch::Contains("rl: pitch policy: user 14 has no CF embedding in " +
                                    (run.dir.path / "cf.safetensors").string()) &&
                        Catch::Contains("was built with another CF model"));
}

TEST_CASE("rl stage: a resume refuses changed inputs or reward weights, accepts evaluation settings",
          "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  const auto out = run.dir.path / "rl";
  auto c = tiny_config(run.dir.path, out);
  *c.iterations = 2;
  pipeline::run_rl(c, toy_reward);
  auto changed = c;
  *changed.weights = "precision=2";
  CHECK_THROWS_WITH(
      pipeline::run_rl(changed, toy_reward),
      Catch::Contains("weights (checkpoint \"precision=1,appeal=1,personalization=1,relevance=1\", "
                      "this run \"precision=2\")"));
  changed = c;
  *changed.algo = "pg";
  *changed.rloo_k = 2;
  CHECK_THROWS_WITH(pipeline::run_rl(changed, toy_reward), Catch::Contains("algo (checkpoint \"ppo\""));
  auto free = c;
  *free.iterations = 4, *free.eval_every = 1, *free.save_every = 1;
  CHECK(pipeline::run_rl(free, toy_reward).iterations == 4);
}

TEST_CASE("rl stage: standardised components are weighted (x - mean) / std, from fixed statistics",
          "[pipeline][rl]") {
  std::vector<pipeline::PitchToScore> pitches{
      {1, 2, "eeee", true}, {1, 2, "abcd", false}, {1, 2, "eebb", true}};
  const auto stats = pipeline::fit_component_statistics(toy_reward, pitches);
  // e_share 1, 0, 0.5: mean 0.5, population std sqrt(1/6); ended 1, 0, 1: mean 2/3, std sqrt(2/9).
  REQUIRE(stats.size() == 2);
  CHECK(stats.at("e_share").mean == Approx(0.5));
  CHECK(stats.at("e_share").std == Approx(std::sqrt(1.0 / 6)));
  CHECK(stats.at("ended").mean == Approx(2.0 / 3));
  CHECK(stats.at("ended").std == Approx(std::sqrt(2.0 / 9)));
  const auto reward = pipeline::standardized_reward(toy_reward, {{"e_share", 2.0}}, stats);
  const auto s = reward(pitches);
  for (std::size_t i = 0; i < pitches.size(); ++i) {
    const double e = s.components.at("e_share")[i], ended = s.components.at("ended")[i];
    CHECK(s.total[i] == Approx(2 * (e - 0.5) / std::sqrt(1.0 / 6) + (ended - 2.0 / 3) / std::sqrt(2.0 / 9)));
  }
  CHECK(s.components.at("e_share") == std::vector<double>{1, 0, 0.5});  // components stay raw
  CHECK_THROWS_WITH(
      pipeline::standardized_reward(toy_reward, {{"appeal", 1.0}}, stats),
      Catch::Contains("--weights: unknown reward 'appeal'") && Catch::Contains("e_share, ended"));
  const std::vector<pipeline::PitchToScore> same{{1, 2, "eeee", true}, {1, 2, "eeee", true}};
  CHECK_THROWS_WITH(pipeline::fit_component_statistics(toy_reward, same),
                    Catch::Contains("'e_share' is 1 on all 2 warm-start samples"));
}

namespace {
// The toy reward without its 'ended' component (which a few short samples may leave constant).
pipeline::PitchRewardScores e_share_reward(std::span<const pipeline::PitchToScore> batch) {
  auto s = toy_reward(batch);
  s.components.erase("ended");
  return s;
}
}  // namespace

TEST_CASE("rl stage: --normalize standardize fixes the statistics from the warm start, also on resume",
          "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  auto config = [&](const std::filesystem::path& out) {
    auto c = tiny_config(run.dir.path, out);
    *c.normalize = "standardize";
    *c.normalize_samples = 24;
    *c.weights = "e_share=3";
    return c;
  };
  pipeline::run_rl(config(run.dir.path / "whole"), e_share_reward);
  const auto stats = nlohmann::json::parse(io::read_file(run.dir.path / "whole" / "normalization.json"));
  CHECK(stats.at("samples") == 24);
  const double mean = stats["components"]["e_share"]["mean"], sd = stats["components"]["e_share"]["std"];
  CHECK(sd > 0);
  const auto rows = read_rows(run.dir.path / "whole" / "metrics.jsonl");
  for (const auto& r : rows)  // the evaluation's mix is the weighted standardised component
    if (r.contains("eval/reward"))
      CHECK(r.at("eval/reward").get<double>() ==
            Approx(3 * (r.at("eval/rewards/e_share/mean").get<double>() - mean) / sd).margin(1e-9));

  auto first = config(run.dir.path / "resumed");
  *first.iterations = 2;
  pipeline::run_rl(first, e_share_reward);
  pipeline::run_rl(config(run.dir.path / "resumed"), e_share_reward);
  CHECK(io::read_file(run.dir.path / "resumed" / "normalization.json") ==
        io::read_file(run.dir.path / "whole" / "normalization.json"));
  CHECK(read_rows(run.dir.path / "resumed" / "metrics.jsonl") == rows);

  // The checkpoint holds the statistics and a resume reads them: a reward whose component doubled
  // would give other ones if they were sampled again.
  CHECK(pipeline::detail::checkpoint_statistics(run.dir.path / "resumed" / "state.safetensors") == stats);
  auto longer = config(run.dir.path / "resumed");
  *longer.iterations = 5;
  pipeline::run_rl(longer, [](std::span<const pipeline::PitchToScore> batch) {
    auto s = e_share_reward(batch);
    for (auto& x : s.components.at("e_share")) x *= 2;
    return s;
  });
  CHECK(nlohmann::json::parse(io::read_file(run.dir.path / "resumed" / "normalization.json")) == stats);

  auto raw = config(run.dir.path / "resumed");
  *raw.normalize = "none";
  CHECK_THROWS_WITH(pipeline::run_rl(raw, e_share_reward),
                    Catch::Contains("normalize (checkpoint \"standardize\", this run unset)"));
  *raw.normalize = "zscore";
  CHECK_THROWS_WITH(pipeline::run_rl(raw, e_share_reward),
                    Catch::Contains("--normalize: 'zscore', expected none or standardize"));
}

namespace {
// Every parameter of the pitch model in `file`, flattened.
std::vector<float> pitch_model_parameters(const std::filesystem::path& file) {
  auto model = rl::PitchPolicyLoader::open(file).load<p4lm_test::kDim>();
  std::vector<float> all;
  for (auto& p : model.lm().parameters())
    all.insert(all.end(), p.value.data(), p.value.data() + p.value.numel());
  for (auto& p : model.prefix().adapter().parameters())
    all.insert(all.end(), p.value.data(), p.value.data() + p.value.numel());
  return all;
}
}  // namespace

TEST_CASE("rl stage: --keep best keeps the validation-best policy, --patience stops the run",
          "[pipeline][rl]") {
  p4lm_test::TinyRun run;
  auto c = tiny_config(run.dir.path, run.dir.path / "best");
  *c.iterations = 24, *c.eval_every = 4, *c.save_every = 4, *c.keep = "best", *c.patience = 2;
  const auto result = pipeline::run_rl(c, toy_reward);

  // What the rows say: the first highest eval/reward, and the second evaluation in a row not above it.
  const auto rows = read_rows(run.dir.path / "best" / "metrics.jsonl");
  double best = -1e300;
  std::size_t best_iteration = 0, stop = 24, since = 0;
  for (const auto& r : rows) {
    if (!r.contains("eval/reward")) continue;
    const auto it = r.at("iteration").get<std::size_t>();
    if (r.at("eval/reward").get<double>() > best) {
      best = r.at("eval/reward").get<double>(), best_iteration = it, since = 0;
    } else if (++since == 2) {
      stop = std::min(stop, it);
    }
  }
  CHECK(result.iterations == stop);
  CHECK(rows.back().at("iteration").get<std::size_t>() == stop);
  CHECK(result.stopped_early == (stop < 24));
  CHECK(result.kept == "best");
  CHECK(result.best_eval.at("iteration").get<std::size_t>() == best_iteration);
  CHECK(result.best_eval.at("eval/reward").get<double>() == best);
  const auto saved = nlohmann::json::parse(io::read_file(run.dir.path / "best" / "result.json"));
  CHECK(saved.at("best_eval") == result.best_eval);

  // policy.safetensors is the policy after best_iteration iterations: the warm start, or what a run
  // stopped there by --iterations keeps as its last.
  std::vector<float> expected;
  if (best_iteration == 0) {
    expected = pitch_model_parameters(run.dir.path / "model.safetensors");
  } else {
    auto last = tiny_config(run.dir.path, run.dir.path / "last");
    *last.iterations = long(best_iteration);
    pipeline::run_rl(last, toy_reward);
    expected = pitch_model_parameters(run.dir.path / "last" / "policy.safetensors");
  }
  CHECK(pitch_model_parameters(run.dir.path / "best" / "policy.safetensors") == expected);

  // Killed after its checkpoint at iteration 8 and resumed: the best so far comes back from the rows.
  auto first = c;
  *first.out = (run.dir.path / "resumed").string(), *first.iterations = 8;
  pipeline::run_rl(first, toy_reward);
  auto second = c;
  *second.out = *first.out;
  CHECK(pipeline::run_rl(second, toy_reward).best_eval == result.best_eval);
  CHECK(read_rows(run.dir.path / "resumed" / "metrics.jsonl") == rows);
  CHECK(pitch_model_parameters(run.dir.path / "resumed" / "policy.safetensors") == expected);

  // Run again on the stopped folder: the patience is spent, nothing more is trained.
  CHECK(pipeline::run_rl(c, toy_reward).iterations == stop);
  CHECK(read_rows(run.dir.path / "best" / "metrics.jsonl") == rows);

  // A resume may not switch --keep (the best policy was not written by a run keeping the last).
  auto switched = c;
  *switched.keep = "last";
  CHECK_THROWS_WITH(pipeline::run_rl(switched, toy_reward), Catch::Contains("keep (checkpoint \"best\""));
  *switched.keep = "worst";
  CHECK_THROWS_WITH(pipeline::run_rl(switched, toy_reward),
                    Catch::Contains("--keep: 'worst', expected last or best"));
  auto blind = tiny_config(run.dir.path, run.dir.path / "blind");
  *blind.patience = 2, *blind.eval_pairs = 0;
  CHECK_THROWS_WITH(pipeline::run_rl(blind, toy_reward),
                    Catch::Contains("--patience chooses by the evaluations"));
}
