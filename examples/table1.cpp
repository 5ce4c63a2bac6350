// Table 1 for one seed from library calls: the main run (CF, data, reward models, two-stage warm
// start, PPO on the reward mix), then a variant that shares its CF, data and reward models but warm-
// starts in a single stage (P4LM-S), each evaluated on the same held-out users with their own and
// with shuffled CF embeddings. `p4lm reproduce table1` does this per seed and adds confidence
// intervals (pipeline/reproduce.hpp).
//   build/release/examples/example_table1 [preset] [out-folder]     (preset tiny: a minute or two)

#include <iostream>
#include <string>
#include <vector>

#include <p4lm/pipeline/run.hpp>

int main(int argc, char** argv) {
  using namespace p4lm::pipeline;
  auto config = preset(argc > 1 ? argv[1] : "tiny");
  const std::filesystem::path out = argc > 2 ? argv[2] : "runs/example_table1";
  *config.out = (out / "main").string();
  *config.progress = false;

  const RunPlan plan = plan_run(config);                  // every stage's settings
  const RunResult two_stage = run_plan(plan, std::cout);  // [1]-[8]; result.table1: SFT and P4LM rows

  RunPlan single = variant_of(plan, out / "single-stage");  // CF, data and reward models shared
  single.sft.sft.stage2_steps += single.sft.sft.stage1_steps;
  single.sft.sft.stage1_steps = 0;
  const RunResult one_stage = run_plan(single, std::cout);

  std::vector<TableRow> rows = two_stage.table1;
  for (auto row : one_stage.table1)
    if (row.name == "P4LM") row.name = "P4LM-S", rows.push_back(std::move(row));
  write_table(out, "table1", rows);
  std::cout << '\n' << table_markdown(rows);
  return 0;
}
