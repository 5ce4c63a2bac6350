// Table 1 for one seed from library calls: the main run (CF, data, reward models, two-stage warm
// start, PPO on the reward mix; its table has the prompted base LM, SFT and P4LM), then two variants
// that share its CF, data and reward models: a single-stage warm start and its RL (P4LM-S), and
// SFT-Text (the profile as text in the prompt, no CF adapter, no RL). Every row is evaluated on the
// same held-out users with their own and with shuffled CF embeddings (profiles for the text rows).
// `p4lm reproduce table1` does this per seed and adds confidence intervals (pipeline/reproduce.hpp).
//   build/release/examples/example_table1 [preset] [out-folder] [p4lm run flags...]
//   example_table1 tiny /tmp/t1 --rl-iterations 1      (preset tiny: seconds per run)

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <p4lm/pipeline/run.hpp>

int main(int argc, char** argv) {
  using namespace p4lm::pipeline;
  // Flags after the folder override the preset's settings, as for `p4lm run`.
  std::vector<std::string> flags{"--preset", argc > 1 ? argv[1] : "tiny"};
  flags.insert(flags.end(), argv + std::min(argc, 3), argv + argc);
  auto config = parse_run_flags(flags);
  const std::filesystem::path out = argc > 2 ? argv[2] : "runs/example_table1";
  *config.out = (out / "main").string();
  *config.progress = false;

  const RunPlan plan = plan_run(config);             // every stage's settings
  const RunResult main = run_plan(plan, std::cout);  // [1]-[8]; main.table1: Base, SFT and P4LM rows
  // The variants: their own warm start (and RL) in their own folder, CF, data and reward models shared.
  const RunResult single = run_plan(single_stage_variant_of(plan, out / "single-stage"), std::cout);
  const RunResult text = run_plan(text_variant_of(plan, out / "sft-text"), std::cout);

  std::vector<TableRow> rows;
  for (const auto& name : {"Base", "SFT-Text", "SFT", "P4LM", "P4LM-S"})
    for (const auto* run : {&main, &single, &text})
      for (auto row : run->table1) {
        if (run == &single && row.name != "P4LM") continue;  // its SFT is the single-stage warm start
        if (run == &single) row.name = "P4LM-S";
        if (row.name == name) rows.push_back(std::move(row));
      }
  write_table(out, "table1", rows);
  std::cout << '\n' << table_markdown(rows);
  return 0;
}
