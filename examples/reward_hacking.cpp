// Table 3's question for one reward: what does RL on one reward alone do to the others and to the
// gold judge? The main run gives the warm start and the reward models; a second RL stage trains the
// same warm start on appeal alone; both policies are scored on every reward and by the gold judge.
//   build/release/examples/example_reward_hacking [preset] [out-folder] [p4lm run flags...]
//   example_reward_hacking tiny /tmp/rh --rl-iterations 1     (preset tiny: a minute)

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <p4lm/pipeline/run.hpp>

int main(int argc, char** argv) {
  using namespace p4lm;
  // Flags after the folder override the preset's settings, as for `p4lm run`.
  std::vector<std::string> flags{"--preset", argc > 1 ? argv[1] : "tiny"};
  flags.insert(flags.end(), argv + std::min(argc, 3), argv + argc);
  auto config = pipeline::parse_run_flags(flags);
  const std::filesystem::path out = argc > 2 ? argv[2] : "runs/example_reward_hacking";
  *config.out = (out / "main").string();
  *config.progress = false;
  const auto plan = pipeline::plan_run(config);
  const auto main = pipeline::run_plan(plan, std::cout);

  pipeline::RlConfig appeal_only = plan.rl;  // the main run's RL settings, one weight changed
  *appeal_only.out = (out / "rl-appeal").string();
  *appeal_only.weights = "precision=0,appeal=1,personalization=0,relevance=0";
  pipeline::run_rl(appeal_only);

  // Scored like Table 1: every reward (the full mix's components) and the gold judge.
  const auto mix = pipeline::load_reward_mix(plan.rewards.out, *plan.rl.weights, plan.encoder, plan.sft.data,
                                             *plan.data.cf);
  const auto judge = eval::GoldJudge::load(plan.sft.data);
  const auto pairs = pipeline::evaluation_pairs(plan.sft.data, plan.table_pairs);
  const auto policy = rl::PitchPolicyLoader::open(out / "rl-appeal" / "policy.safetensors");
  std::vector<pipeline::TableRow> rows;
  for (const auto& row : main.table1)
    if (!row.shuffled && row.name != "Base") rows.push_back(row);
  rows.push_back(
      {"RL on appeal", false,
       pipeline::evaluate_pitch_model(policy, plan.sft.data, {pairs}, plan.evaluation, mix, &judge).front()});
  std::cout << '\n' << pipeline::table_markdown(rows);
  std::cout << "RL on appeal, first user: "
            << rows.back().evaluation.rows.front().at("pitch").get<std::string>() << '\n';
  return 0;
}
