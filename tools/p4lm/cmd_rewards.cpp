// `p4lm rewards`: the four learned rewards (include/p4lm/reward/), frozen MiniLM + trained heads.
//   p4lm rewards train --data runs/data --out runs/rewards [--only precision,appeal]
//   p4lm rewards eval  --data runs/data --models runs/rewards [--pitches s.jsonl]   held-out table (test
//       users), then agreement with the gold judge on the teacher's test pitches and --pitches
//   p4lm rewards score --models runs/rewards --pitches s.jsonl       (cmd_rewards_score.cpp)

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include <p4lm/core/config.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/pipeline/reward_agreement.hpp>
#include <p4lm/reward/training.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
int rewards_score(std::span<const std::string> args);  // cmd_rewards_score.cpp
namespace {
struct RewardsConfig {
  Param<std::string> data{"runs/data",
                          "p4lm data build folder (nli/, appeal/, personalization/, relevance/)"};
  Param<std::string> out{"runs/rewards",
                         "train: folder for <reward>.safetensors, heldout.json, checkpoints and metrics"};
  Param<std::string> models{"", "eval: folder of trained rewards (default: --out)"};
  Param<std::string> only{
      "", "comma list of precision,appeal,personalization,preference_relevance (default all)"};
  Param<std::string> encoder{"models/all-minilm-l6-v2", "sentence-transformers folder of the frozen encoder"};
  Param<std::string> cf{"", "CF model of the relevance targets (default: the data build's config.json cf)"};
  Param<int> max_train{800, "training examples per reward (encoding them is the cost)", between(1, 1000000)};
  Param<int> max_test{400, "held-out examples per reward", between(1, 1000000)};
  Param<int> steps{600, "optimizer steps per head", between(1, 1000000)};
  Param<int> precision_max_train{4000, "precision's training examples (0: --max-train)", between(0, 1000000)};
  Param<int> precision_steps{1500, "precision's optimizer steps (0: --steps)", between(0, 1000000)};
  Param<bool> progress{false, "show training progress"};
  Param<bool> resume{true, "train: continue a killed run from its checkpoints in --out; false: start over"};
  Param<std::string> pitches{"",
                             "eval: a second pitch file (user_id, movie_id, pitch) for the agreement table"};
  Param<int> bootstrap{2000, "eval: bootstrap resamples of the agreement intervals", between(1, 1000000)};
  Param<std::string> agreement_out{"", "eval: also write the agreement table to this JSON file"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::RewardsConfig, data, out, models, only, encoder, cf, max_train, max_test,
                        steps, precision_max_train, precision_steps, progress, resume, pitches, bootstrap,
                        agreement_out);

namespace p4lm::cli {
namespace {
namespace fs = std::filesystem;
using reward::Figures;

void print_figures(const std::string& name, const Figures& fig) {
  std::cout << std::left << std::setw(22) << name << std::fixed << std::setprecision(4);
  for (const auto& [k, v] : fig) std::cout << ' ' << k << '=' << v;
  std::cout << std::endl;
}

template <int Dim>
Figures relevance(const RewardsConfig& c, std::shared_ptr<reward::TextFeatures> f,
                  const reward::RewardTrainOptions& o) {
  const fs::path file = fs::path(c.models->empty() ? *c.out : *c.models) / "preference_relevance.safetensors";
  auto r = reward::PreferenceRelevance<backend::cpu, Dim>::load(file, f);
  return reward::relevance_figures(
      r,
      reward::take(data::read_records<data::RelevanceExample>(fs::path(*c.data) / "relevance/test.jsonl"),
                   o.max_test, o.seed),
      cf::load_embeddings<Dim>(reward::relevance_cf_path(*c.data, *c.cf)));
}

int rewards_main(std::span<const std::string> args) {
  if (args.empty()) fail<UsageError>("p4lm rewards: expected train, eval or score");
  if (args[0] == "score") return rewards_score(args.subspan(1));
  const bool train = args[0] == "train";
  if (!train && args[0] != "eval")
    fail<UsageError>("p4lm rewards: expected train, eval or score, got '", args[0], "'");
  const auto c = parse_flags<RewardsConfig>(args.subspan(1));
  const fs::path data(*c.data), models(c.models->empty() ? *c.out : *c.models);
  reward::RewardTrainOptions o{.max_train = std::size_t(*c.max_train),
                               .max_test = std::size_t(*c.max_test),
                               .steps = std::size_t(*c.steps),
                               .precision_max_train = std::size_t(*c.precision_max_train),
                               .precision_steps = std::size_t(*c.precision_steps),
                               .progress = *c.progress,
                               .resume = *c.resume};
  for (const char* name : reward::reward_names)
    (void)reward::reward_wanted(*c.only, name);  // a typo before the encoder
  std::vector<pipeline::PitchSet> sets;          // read first: a bad line fails before any model loads
  if (!train && !c.pitches->empty())
    sets.push_back(pipeline::read_pitch_set(fs::path(*c.pitches).stem(), *c.pitches));
  if (!train) sets.insert(sets.begin(), pipeline::teacher_test_pitches(data));
  auto f = std::make_shared<reward::TextFeatures>(*c.encoder);
  auto t0 = std::chrono::steady_clock::now();
  if (train) {  // resumable; heldout.json holds no wall time, the seconds are printed
    reward::train_rewards(f, {.data = data, .out = *c.out, .cf = *c.cf, .only = *c.only, .options = o},
                          [&](const std::string& name, Figures fig) {
                            const auto t1 = std::chrono::steady_clock::now();
                            fig["seconds"] = std::chrono::duration<double>(t1 - t0).count();
                            t0 = t1;
                            print_figures(name, fig);
                          });
    return 0;
  }
  const auto timed = [&](const std::string& name, auto&& run) {
    if (!reward::reward_wanted(*c.only, name)) return;
    t0 = std::chrono::steady_clock::now();
    Figures fig = run();
    fig["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_figures(name, fig);
  };
  timed("precision", [&] {
    auto r = reward::Precision<>::load(models / "precision.safetensors", f);
    return Figures{
        {"nli_accuracy",
         reward::nli_accuracy(r, reward::take(data::read_records<data::NliPair>(data / "nli/test.jsonl"),
                                              o.max_test, o.seed))}};
  });
  const auto bt = [&]<class R>(R*) {
    auto r = R::load(models / (std::string(R::name()) + ".safetensors"), f);
    const auto test = reward::take(data::read_records<data::PreferencePair>(data / R::name() / "test.jsonl"),
                                   o.max_test, o.seed);
    return Figures{{"pair_accuracy", reward::pair_accuracy(r, test)}};
  };
  timed("appeal", [&] { return bt(static_cast<reward::Appeal<>*>(nullptr)); });
  timed("personalization", [&] { return bt(static_cast<reward::Personalization<>*>(nullptr)); });
  timed("preference_relevance", [&] {
    return cf::with_cf_dim(cf::embeddings_dim(reward::relevance_cf_path(*c.data, *c.cf)),
                           [&](auto d) { return relevance<decltype(d)::value>(c, f, o); });
  });
  const eval::BootstrapOptions b{.resamples = std::size_t(*c.bootstrap)};
  const auto t = pipeline::reward_agreement(
      {.data = data, .rewards = models, .encoder = *c.encoder, .cf = *c.cf, .only = *c.only, .bootstrap = b},
      sets);
  std::cout << (t.skipped.empty() ? "\n" + eval::format_agreement(t.rows, b)
                                  : "agreement: skipped, " + t.skipped + "\n");
  if (!c.agreement_out->empty())
    io::write_file_atomically(*c.agreement_out, eval::agreement_json(t.rows, b).dump(2) + "\n");
  return 0;
}

const Registration rewards_registration{
    "rewards", Command{"learned rewards: `rewards train|eval|score` (MiniLM features + trained heads)",
                       flags_help<RewardsConfig>(), rewards_main}};

}  // namespace
}  // namespace p4lm::cli
