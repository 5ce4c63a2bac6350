// `p4lm rl --sft RUN --data DIR --rewards DIR --out DIR`: the RL stage. The warm-started pitch model
// of an SFT run is trained by PPO (or --algo pg, the KL-regularised policy gradient) against the P4LM
// reward mix, with the warm start as the KL reference (pipeline::run_rl,
// include/p4lm/pipeline/rl_stage.hpp; docs/rl.md). Data parallel under mpirun (docs/distributed.md).
//   p4lm rl --sft runs/main/sft --data runs/main/data --rewards runs/main/rewards --out runs/main/rl
//           --weights precision=1,appeal=1,personalization=1,relevance=1 --iterations 50

#include <iostream>

#include <p4lm/pipeline/rl_stage.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

void print_eval(const char* when, const nlohmann::json& row) {
  if (!row.is_object() || !row.contains("eval/reward")) return;
  std::cout << when << ":";
  for (const auto& [k, v] : row.items())
    if ((k.starts_with("eval/") || k.starts_with("gold/")) && v.is_number())
      std::cout << ' ' << k << '=' << v;
  std::cout << '\n';
}

int rl_main(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::RlConfig>(args);
  const auto r = pipeline::run_rl(c);
  std::cout << "rl: " << r.iterations << " iterations (" << *c.algo << ") in " << r.seconds
            << " s; artifacts in " << *c.out << '\n';
  print_eval("held-out pairs before", r.first_eval);
  print_eval("held-out pairs after", r.last_eval);
  if (r.stopped_early) std::cout << "rl: stopped early: eval/reward did not rise in --patience evaluations\n";
  if (r.kept == "best" && r.best_eval.is_object())
    std::cout << "rl: policy.safetensors is iteration " << r.best_eval.at("iteration").get<double>()
              << "'s, the highest eval/reward (" << r.best_eval.at("eval/reward") << ")\n";
  return 0;
}

const Registration rl_registration{
    "rl",
    Command{"train the warm-started pitch model against the reward mix (PPO or RLOO, KL to the warm start)",
            flags_help<pipeline::RlConfig>(), rl_main}};

}  // namespace
}  // namespace p4lm::cli
