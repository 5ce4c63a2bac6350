// `p4lm cf train|eval|compare|tune`: collaborative filtering on MovieLens (stage 2 of the pipeline),
// through include/p4lm/pipeline/cf_stage.hpp (train_cf, evaluate_cf, compare_cf, tune_cf).
//   p4lm cf train --out runs/cf --model als --dim 32        -> cf.safetensors, config.json, metrics.jsonl
//   p4lm cf eval --model runs/cf/cf.safetensors             -> test metrics of the embeddings + baselines
//   p4lm cf compare --seeds 1,2,3                           -> every method on every seed, mean +- std
//   p4lm cf tune --model als --dims 16,32 --regs 0.02,0.05  -> grid on a validation split carved from train

#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <utility>

#include <p4lm/pipeline/cf_stage.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

void print_metrics(const std::string& title, const pipeline::Metrics& m) {
  std::cout << title << ':';
  for (const auto& [k, v] : m) std::cout << ' ' << k << '=' << pipeline::format_metric(v);
  std::cout << '\n';
}

int run_train(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::CfTrainConfig>(args);
  const auto r = pipeline::train_cf(c);
  if (*c.json) {
    auto j = r.json();
    j["config"] = to_json(c);
    std::cout << j.dump() << '\n';
  } else {
    print_metrics(r.watched, r.metrics);
    std::cout << "wrote " << r.embeddings.string() << '\n';
  }
  return 0;
}

int run_eval(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::CfEvalConfig>(args);
  const auto result = pipeline::evaluate_cf(c);
  if (*c.json)
    std::cout << result.dump() << '\n';
  else
    for (const auto& [name, m] : result["test"].items()) print_metrics(name, m.get<pipeline::Metrics>());
  return 0;
}

int run_compare(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::CfCompareConfig>(args);
  const auto r = pipeline::compare_cf(
      c, [](std::int64_t seed) { std::cerr << "cf compare: seed " << seed << " done\n"; });
  std::cout << (*c.json ? r.json().dump() + "\n" : r.markdown());
  return 0;
}

int run_tune(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::CfTuneConfig>(args);
  const bool text = !*c.json;
  bool first = true;
  const auto r =
      pipeline::tune_cf(c, [&](const pipeline::CfTuneResult& so_far, const pipeline::CfTuneRow& row) {
        if (!text) return;
        if (std::exchange(first, false))
          for (const auto& [name, m] : so_far.baselines) print_metrics("validation " + name, m);
        std::cout << "dim " << row.dim << " reg " << row.reg
                  << (so_far.explicit_model ? " reg_bias " : " alpha ") << row.extra;
        for (const auto* k : {"rmse", "ndcg@10", "recall@10"})
          if (row.validation.count(k))
            std::cout << ' ' << k << ' ' << pipeline::format_metric(row.validation.at(k));
        std::cout << std::endl;
      });
  if (*c.json)
    std::cout << r.json().dump() << '\n';
  else
    std::cout << "best by validation " << r.criterion << ": " << r.json()["best"].dump() << '\n';
  return 0;
}

using Verb = std::pair<std::function<int(std::span<const std::string>)>, std::string>;
const std::map<std::string, Verb>& verbs() {
  static const std::map<std::string, Verb> table{
      {"train", {run_train, flags_help<pipeline::CfTrainConfig>()}},
      {"eval", {run_eval, flags_help<pipeline::CfEvalConfig>()}},
      {"compare", {run_compare, flags_help<pipeline::CfCompareConfig>()}},
      {"tune", {run_tune, flags_help<pipeline::CfTuneConfig>()}}};
  return table;
}

int run_cf(std::span<const std::string> args) {
  if (args.empty()) fail<UsageError>("expected a verb: train, eval, compare or tune (see p4lm cf --help)");
  const auto it = verbs().find(args[0]);
  if (it == verbs().end())
    fail<UsageError>("unknown verb '", args[0], "': expected train, eval, compare or tune");
  const auto rest = args.subspan(1);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << "usage: p4lm cf " << it->first << " [options]\n\n" << it->second.second;
    return 0;
  }
  return it->second.first(rest);
}

const Registration cf_registration{
    "cf", Command{"collaborative filtering on MovieLens: cf train | eval | compare | tune",
                  "verbs:\n  train    train ALS embeddings, write cf.safetensors\n"
                  "  eval     evaluate saved embeddings (and baselines) on their test split\n"
                  "  compare  every method on several seeds, mean +- std\n"
                  "  tune     hyperparameter grid on a validation split carved from train\n"
                  "see p4lm cf <verb> --help\n",
                  run_cf}};

}  // namespace
}  // namespace p4lm::cli
