// Kill -9 at random moments of `p4lm rl` (pipeline::run_rl, the library call the command makes), then
// the same run: the output folder ends byte for byte as an uninterrupted run's (state, policy,
// metrics, samples, curves, result.json), for PPO and for the policy gradient. The runs are child
// processes of this test program (tests/support/kill_resume.hpp) on the tiny warm-started pitch run
// of tests/rl/tiny_pitch_run.hpp, scored by a toy reward (the reward models are tested elsewhere).

#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <span>
#include <string>

#include "../rl/tiny_pitch_run.hpp"
#include "kill_resume.hpp"
#include "p4lm/pipeline/rl_stage.hpp"

namespace rl_kill_test {

// The share of letters that are 'e', and a bonus for ending: cheap and deterministic.
p4lm::pipeline::PitchRewardScores kill_toy_reward(std::span<const p4lm::pipeline::PitchToScore> batch) {
  p4lm::pipeline::PitchRewardScores s;
  for (const auto& p : batch) {
    double e = 0, letters = 0;
    for (char ch : p.pitch)
      if (std::isalpha(static_cast<unsigned char>(ch))) letters += 1, e += ch == 'e';
    const double share = letters > 0 ? e / letters : 0;
    s.components["e_share"].push_back(share);
    s.total.push_back(4 * share + (p.ended ? 0.5 : 0));
  }
  return s;
}

// The child's work: `p4lm rl --sft <run> --data <run> --out <out>` on tiny settings, with evaluations
// (samples) and checkpoints at different periods so that kills fall between them too.
void rl_child(const std::string& algo, const std::filesystem::path& run, const std::filesystem::path& out) {
  p4lm::pipeline::RlConfig c;
  *c.sft = run.string();
  *c.data = run.string();
  *c.out = out.string();
  *c.algo = algo;
  *c.iterations = 16;
  *c.batch_size = 4;
  *c.mini_batch_size = 2;
  *c.ppo_epochs = 2;
  *c.rloo_k = 2;
  *c.learning_rate = 3e-3;
  *c.response.response_length = 6;
  *c.eval_every = 3;
  *c.eval_pairs = 2;
  *c.save_every = 2;
  *c.gold = false;  // the fixture is no full data build
  *c.progress = false;
  p4lm::pipeline::run_rl(c, kill_toy_reward);
}

void rl_kill_and_resume(const std::string& algo) {
  p4lm_test::TinyRun run;  // the warm start, written once; the children read it
  // Progress: the Trainer's record per iteration (steps.jsonl); a kill lands up to ~an iteration later.
  p4lm_test::kill_resume::kill_and_resume({.kind = "rl-" + algo,
                                           .progress_files = {"steps.jsonl"},
                                           .input = run.dir.path.string(),
                                           .max_extra_us = 20000});
}

}  // namespace rl_kill_test

TEST_CASE("kill-resume child", "[.]") {  // hidden: run only by kill_and_resume as a child process
  const char* kind = p4lm_test::kill_resume::child_kind();
  const char* out = p4lm_test::kill_resume::child_out();
  const char* input = p4lm_test::kill_resume::child_input();
  if (!kind || !out || !input) return;
  if (std::string(kind) == "rl-ppo") rl_kill_test::rl_child("ppo", input, out);
  if (std::string(kind) == "rl-pg") rl_kill_test::rl_child("pg", input, out);
}

TEST_CASE("rl (PPO): kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[pipeline][rl][kill]") {
  rl_kill_test::rl_kill_and_resume("ppo");
}

TEST_CASE(
    "rl (policy gradient): kill -9 at random moments, then the same run: the files of the "
    "uninterrupted run",
    "[pipeline][rl][kill]") {
  rl_kill_test::rl_kill_and_resume("pg");
}
