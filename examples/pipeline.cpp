// The whole pipeline from a program: the `tiny` preset (the same RunConfig `p4lm run --preset tiny`
// gets), one setting changed, every stage run in-process, then the stages' results read back from
// the returned RunResult. Run it twice: the second run reuses every artifact.
//   build/release/examples/example_pipeline [out-folder]

#include <iostream>
#include <string>

#include <p4lm/pipeline/run.hpp>

int main(int argc, char** argv) {
  auto config = p4lm::pipeline::preset("tiny");
  *config.out = argc > 1 ? argv[1] : "runs/example_pipeline";
  *config.stage2_steps = 8;  // any field of the preset can be changed, as a flag would
  *config.progress = false;
  const auto result = p4lm::pipeline::run_main(config, std::cout);

  std::cout << "\nSFT: " << result.sft.steps << " steps, held-out loss " << result.sft.test_loss
            << " (shuffled users " << result.sft.test_loss_shuffled_users << ")\n";
  for (const auto& row : result.pitches)
    std::cout << "user " << row["user_id"] << ", movie " << row["movie_id"] << ": "
              << row["pitch"].get<std::string>() << '\n';
  return 0;
}
