// `p4lm evaluate --model M --data DIR --rewards DIR`: greedy pitches of one pitch model for held-out
// pairs, scored by the reward models and the gold judge as the RL stage's validation scores them
// (pipeline::evaluate_heldout, include/p4lm/pipeline/evaluation_stage.hpp). What a setting is chosen
// by on the validation users (docs/results.md, "The warm start's schedule"):
//   p4lm evaluate --model runs/main/sft --data runs/main/data --rewards runs/main/rewards
//                 --normalization runs/main/rl/normalization.json --split val --pairs 32 --out val.jsonl

#include <iomanip>
#include <iostream>

#include <p4lm/pipeline/evaluation_stage.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

int evaluate_main(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::EvaluateConfig>(args);
  const auto e = pipeline::evaluate_heldout(c);
  std::cout << *c.model << " on " << e.rows.size() << " " << *c.split << " pairs"
            << (*c.shuffled ? " (shuffled users)" : "") << ", means:\n"
            << std::setprecision(4);
  for (const auto& [name, mean] : e.means) std::cout << "  " << name << " " << mean << '\n';
  if (!c.out->empty()) std::cout << "pitches and scores in " << *c.out << '\n';
  return 0;
}

const Registration evaluate_registration{
    "evaluate",
    Command{
        "greedy pitches of a pitch model for held-out pairs, scored by the reward models and the gold judge",
        flags_help<pipeline::EvaluateConfig>(), evaluate_main}};

}  // namespace
}  // namespace p4lm::cli
