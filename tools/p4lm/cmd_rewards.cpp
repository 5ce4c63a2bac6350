// `p4lm rewards`: the four learned rewards (include/p4lm/reward/), frozen MiniLM + trained heads.
//   p4lm rewards train --data runs/data --out runs/rewards [--only precision,appeal]
//   p4lm rewards eval  --data runs/data --models runs/rewards      held-out table (test users)
//   p4lm rewards score --models runs/rewards --pitches s.jsonl       (cmd_rewards_score.cpp)

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include <p4lm/core/config.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/reward/training.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
int rewards_score(std::span<const std::string> args);  // cmd_rewards_score.cpp
namespace {
struct RewardsConfig {
  Param<std::string> data{"runs/data",
                          "p4lm data build folder (nli/, appeal/, personalization/, relevance/)"};
  Param<std::string> out{"runs/rewards", "train: folder for <reward>.safetensors and heldout.json"};
  Param<std::string> models{"", "eval: folder of trained rewards (default: --out)"};
  Param<std::string> only{
      "", "comma list of precision,appeal,personalization,preference_relevance (default all)"};
  Param<std::string> encoder{"models/all-minilm-l6-v2", "sentence-transformers folder of the frozen encoder"};
  Param<std::string> cf{"", "CF model of the relevance targets (default: the data build's config.json cf)"};
  Param<int> max_train{800, "training examples per reward (encoding them is the cost)", between(1, 1000000)};
  Param<int> max_test{400, "held-out examples per reward", between(1, 1000000)};
  Param<int> steps{600, "optimizer steps per head", between(1, 1000000)};
  Param<bool> progress{false, "show training progress"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::RewardsConfig, data, out, models, only, encoder, cf, max_train, max_test,
                        steps, progress);

namespace p4lm::cli {
namespace {
namespace fs = std::filesystem;
using reward::Figures;

bool wanted(const std::string& only, const std::string& name) {
  return only.empty() || ("," + only + ",").find("," + name + ",") != std::string::npos;
}

fs::path cf_path(const RewardsConfig& c) {
  if (!c.cf->empty()) return *c.cf;
  const auto j = nlohmann::json::parse(std::ifstream(fs::path(*c.data) / "config.json"));
  const std::string p = j.value("cf", "");
  if (p.empty()) fail<UsageError>("preference_relevance needs a data build made with --cf (or give --cf)");
  return p;
}

template <int Dim>
Figures relevance(const RewardsConfig& c, std::shared_ptr<reward::TextFeatures> f,
                  const reward::RewardTrainOptions& o, bool train) {
  const fs::path file = fs::path(train ? *c.out : (c.models->empty() ? *c.out : *c.models)) /
                        "preference_relevance.safetensors";
  if (train) {
    auto [r, fig] = reward::train_relevance<Dim>(f, *c.data, cf_path(c), o);
    r.save(file);
    return fig;
  }
  auto r = reward::PreferenceRelevance<backend::cpu, Dim>::load(file, f);
  return reward::relevance_figures(
      r,
      reward::take(data::read_records<data::RelevanceExample>(fs::path(*c.data) / "relevance/test.jsonl"),
                   o.max_test, o.seed),
      cf::load_embeddings<Dim>(cf_path(c)));
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
                               .progress = *c.progress};
  auto f = std::make_shared<reward::TextFeatures>(*c.encoder);
  if (train) fs::create_directories(*c.out);
  nlohmann::json table;
  const auto timed = [&](const std::string& name, auto&& run) {
    if (!wanted(*c.only, name)) return;
    const auto t0 = std::chrono::steady_clock::now();
    Figures fig = run();
    fig["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    table[name] = fig;
    std::cout << std::left << std::setw(22) << name << std::fixed << std::setprecision(4);
    for (const auto& [k, v] : fig) std::cout << ' ' << k << '=' << v;
    std::cout << std::endl;
  };
  timed("precision", [&] {
    if (train) {
      auto [r, fig] = reward::train_precision(f, data, o);
      r.save(models / "precision.safetensors");
      return fig;
    }
    auto r = reward::Precision<>::load(models / "precision.safetensors", f);
    return Figures{
        {"nli_accuracy",
         reward::nli_accuracy(r, reward::take(data::read_records<data::NliPair>(data / "nli/test.jsonl"),
                                              o.max_test, o.seed))}};
  });
  const auto bt = [&]<class R>(R*) {
    if (train) {
      auto [r, fig] =
          reward::train_bradley_terry<R>(f, data, o, (R::reads & reward::reads_profile ? 3 : 1) * f->dim());
      r.save(models / (std::string(R::name()) + ".safetensors"));
      return fig;
    }
    auto r = R::load(models / (std::string(R::name()) + ".safetensors"), f);
    const auto test = reward::take(data::read_records<data::PreferencePair>(data / R::name() / "test.jsonl"),
                                   o.max_test, o.seed);
    return Figures{{"pair_accuracy", reward::pair_accuracy(r, test)}};
  };
  timed("appeal", [&] { return bt(static_cast<reward::Appeal<>*>(nullptr)); });
  timed("personalization", [&] { return bt(static_cast<reward::Personalization<>*>(nullptr)); });
  timed("preference_relevance", [&] {
    const int dim = cf::embeddings_dim(cf_path(c));
    if (dim == 32) return relevance<32>(c, f, o, train);
    if (dim == 64) return relevance<64>(c, f, o, train);
    fail<UsageError>("preference_relevance: CF width ", dim, " (built for 32 and 64)");
    return Figures{};
  });
  if (train) io::write_file_atomically(models / "heldout.json", table.dump(2) + "\n");
  return 0;
}

const Registration rewards_registration{
    "rewards", Command{"learned rewards: `rewards train|eval|score` (MiniLM features + trained heads)",
                       flags_help<RewardsConfig>(), rewards_main}};

}  // namespace
}  // namespace p4lm::cli
