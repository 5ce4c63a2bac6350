#pragma once
// The configuration of the whole pipeline (`p4lm run`, pipeline::run_main) and its presets.
//
// A preset is one RunConfig: a named set of defaults. The CLI and a user's program get the same one:
//
//   auto c = p4lm::pipeline::preset("tiny");          // stories260K, a few steps per stage
//   *c.out = "/tmp/tiny";
//   p4lm::pipeline::run_main(c);
//
//   p4lm run --preset tiny --out /tmp/tiny --stage2-steps 8   // flags override the preset's values
//
// parse_run_flags reads --preset first, then applies every flag on top of that preset. The presets:
//   default  the main job: SmolLM2-135M-Instruct (stories260K when the model cache lacks it), CF dim 32,
//            reward heads on the frozen MiniLM encoder, SFT 20 + 100 steps of 4 pitches training the
//            adapters and the top 4 blocks, 12 PPO iterations of 8 pitches, Table 1 on 16 held-out users
//   tiny     the end-to-end check: stories260K, a few steps per stage (seconds, not minutes)
// To add one (`paper`), add a function returning its RunConfig and a row to presets(); its name is
// then valid for --preset and for preset(), and the CLI's help lists it.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/hana.hpp>

#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::pipeline {

// [7] RL: the PPO run's size and settings, a group of RunConfig (core/config.hpp).
struct RunPpoConfig {
  Param<long> rl_iterations{20, "PPO iterations (0: no RL stage)", at_least(0)};
  Param<long> rl_batch{16, "PPO samples per iteration", at_least(1)};
  Param<long> rl_mini_batch{4, "PPO samples per optimizer step", at_least(1)};
  Param<long> rl_epochs{2, "PPO passes over each batch", at_least(1)};
  Param<double> rl_lr{1e-5, "PPO learning rate", above(0)};
  Param<double> rl_init_kl_coef{0.1, "initial KL coefficient", at_least(0)};
  Param<double> rl_target_kl{4, "AdaptiveKL's target per-pitch KL in nats", above(0)};
  Param<long> rl_response_length{64, "new tokens per RL sample and per evaluated pitch", at_least(2)};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::RunPpoConfig, rl_iterations, rl_batch, rl_mini_batch, rl_epochs,
                        rl_lr, rl_init_kl_coef, rl_target_kl, rl_response_length);

namespace p4lm::pipeline {

struct RunConfig {
  Param<std::string> preset{"default", "named defaults the other flags override (list below)"};
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<std::string> out{"runs/main", "output folder for every artifact of the run"};
  Param<long> seed{1, "seed of every random choice in the run"};
  // [2] CF
  Param<long> cf_dim{32, "CF embedding width (16, 32 or 64)"};
  Param<long> cf_epochs{15, "ALS epochs", at_least(1)};
  // [3] data
  Param<long> pitches_per_user{20, "teacher pitches per user", at_least(1)};
  // [4] SFT
  Param<std::string> base{
      "smollm2",
      "pitch model's base LM: smollm2 (model cache; stories260K with a notice when absent) "
      "or stories260K (bundled)"};
  Param<long> train_top_layers{0, "SFT stage 2 trains the CF adapters and only the top N blocks (0: all)",
                               at_least(0)};
  Param<long> stage1_steps{60, "SFT stage 1 steps (CF adapters only)", at_least(0)};
  Param<long> stage2_steps{240, "SFT stage 2 steps (everything)", at_least(0)};
  Param<long> batch_size{8, "SFT sequences per step", at_least(1)};
  Param<double> stage1_lr{3e-3, "SFT stage 1 peak learning rate", above(0)};
  Param<double> stage2_lr{2e-3, "SFT stage 2 peak learning rate", above(0)};
  Param<double> stage2_adapter_lr{1e-2, "SFT stage 2 learning rate of the CF adapters", above(0)};
  Param<double> link_weight{5, "weight of the link sentence's tokens in the SFT loss", at_least(0)};
  Param<long> eval_every{50, "held-out evaluation every N SFT steps (0: at each stage's end)", at_least(0)};
  Param<long> eval_examples{128, "validation sequences per evaluation (0: all)", at_least(0)};
  Param<long> checkpoint_every{50, "SFT checkpoint every N steps (0: none)", at_least(0)};
  Param<long> max_train{0, "SFT training sequences (0: all)", at_least(0)};
  Param<long> max_test{300, "test sequences in the final held-out evaluation (0: all)", at_least(0)};
  // [5] pitches
  Param<long> pitch_users{5, "test users that get a sample pitch", at_least(0)};
  Param<long> pitch_tokens{0, "longest sample pitch in tokens (0: the pitch writer's default)", at_least(0)};
  // [6] reward models (frozen sentence encoder, trained heads)
  Param<std::string> encoder{
      "", "sentence encoder of the reward models (empty: all-minilm-l6-v2 in the model cache)"};
  Param<long> reward_train{800, "training examples per reward model", at_least(1)};
  Param<long> reward_test{400, "held-out examples per reward model", at_least(1)};
  Param<long> reward_steps{600, "optimizer steps per reward head", at_least(1)};
  // [7] RL: PPO with a KL penalty on the reward mix, from the SFT model
  Param<std::string> weights{"precision=1,appeal=1,personalization=1,relevance=1", "reward mix weights"};
  RunPpoConfig ppo;  // the PPO run (a group: its fields are flags like the others)
  // [8] evaluation (Table 1)
  Param<long> table_pairs{32, "held-out (user, movie) pairs of distinct test users in Table 1", at_least(2)};
  Param<long> eval_no_repeat_ngram_size{
      0,
      "greedy evaluation pitches (RL validation, Table 1) never repeat a token n-gram of their own (0: off)",
      between(0, 1e6)};
  Param<long> last_stage{8, "stop after this stage (5: no reward models, RL or Table 1)", between(5, 8)};
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace p4lm::pipeline

// Boost.Hana adapts at most 39 members; past that, related settings go into a group like RunPpoConfig.
BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::RunConfig, preset, data, out, seed, cf_dim, cf_epochs,
                        pitches_per_user, base, train_top_layers, stage1_steps, stage2_steps, batch_size,
                        stage1_lr, stage2_lr, stage2_adapter_lr, link_weight, eval_every, eval_examples,
                        checkpoint_every, max_train, max_test, pitch_users, pitch_tokens, encoder,
                        reward_train, reward_test, reward_steps, weights, ppo, table_pairs,
                        eval_no_repeat_ngram_size, last_stage, progress);

namespace p4lm::pipeline {

struct Preset {
  std::string_view name;
  std::string_view summary;
  RunConfig (*make)();
};

// The main job: SmolLM2-135M-Instruct as the base, its top blocks and the
// CF adapters trained, short schedules sized to the main job's budget (README).
inline RunConfig default_preset() {
  RunConfig c;
  // Chosen by validation loss among schedules of the same 480 sequences (docs/results.md, "The warm
  // start's schedule"): more, smaller steps at a larger rate learn the teacher's pitch form, its end
  // included, where 60 steps of 8 at 5e-4 left most greedy pitches looping on one sentence. The plain
  // loss (link weight 1): weighing the link sentence 5x favoured starting another one.
  c.stage1_steps = 20;
  c.stage2_steps = 100;
  c.batch_size = 4;
  c.stage2_lr = 3e-3;
  c.link_weight = 1;
  c.train_top_layers = 4;
  c.eval_every = 0;
  c.eval_examples = 16;
  c.checkpoint_every = 10;
  c.max_test = 32;
  c.pitch_users = 0;  // Table 1 shows pitches of held-out users before and after RL
  c.reward_train = 300;
  c.reward_test = 150;
  c.reward_steps = 300;
  c.ppo.rl_iterations = 12;
  c.ppo.rl_batch = 8;
  c.ppo.rl_mini_batch = 4;
  c.ppo.rl_epochs = 1;
  c.ppo.rl_lr = 5e-5;
  // The teacher's pitches run 96 SmolLM2 tokens on average, 95% fit in 128 with the EOS: a shorter
  // budget cuts almost every pitch before it can end, and the missing-EOS penalty says nothing.
  c.ppo.rl_response_length = 128;
  c.table_pairs = 16;
  return c;
}

// The default preset's models with the longer schedules the paper's tables call for: more SFT steps
// and trained blocks, reward heads on more pairs, PPO on larger batches for longer, Table 1 on more
// users. Hours per seed on 2 CPU cores (docs/results.md), minutes on a GPU.
inline RunConfig paper_preset() {
  RunConfig c = default_preset();
  c.preset = "paper";
  c.out = "runs/paper";
  c.stage1_steps = 120;  // 8x the default's sequences, at its batch size
  c.stage2_steps = 800;
  c.train_top_layers = 8;
  c.eval_every = 100;
  c.eval_examples = 64;
  c.checkpoint_every = 50;
  c.max_test = 300;
  c.reward_train = 2000;
  c.reward_test = 400;
  c.reward_steps = 600;
  c.ppo.rl_iterations = 100;
  c.ppo.rl_batch = 16;
  c.ppo.rl_mini_batch = 4;
  c.ppo.rl_epochs = 2;
  c.table_pairs = 64;
  return c;
}

// The whole pipeline on stories260K in seconds: what the end-to-end test runs.
inline RunConfig tiny_preset() {
  RunConfig c;
  c.preset = "tiny";
  c.out = "runs/tiny";
  c.base = "stories260K";
  c.cf_dim = 16;
  c.cf_epochs = 2;
  c.pitches_per_user = 2;
  c.stage1_steps = 2;
  c.stage2_steps = 4;
  c.batch_size = 4;
  c.eval_every = 0;
  c.eval_examples = 8;
  c.checkpoint_every = 3;
  c.max_train = 64;
  c.max_test = 32;
  c.pitch_users = 2;
  c.pitch_tokens = 48;
  c.reward_train = 24;
  c.reward_test = 16;
  c.reward_steps = 6;
  c.ppo.rl_iterations = 2;
  c.ppo.rl_batch = 4;
  c.ppo.rl_mini_batch = 2;
  c.ppo.rl_epochs = 1;
  c.ppo.rl_lr = 1e-3;  // a visible change in two iterations
  c.ppo.rl_response_length = 16;
  c.table_pairs = 4;
  return c;
}

inline const std::vector<Preset>& presets() {
  static const std::vector<Preset> table{
      {"default", "the main job: SmolLM2 base, every stage, short schedules (README's budget)",
       default_preset},
      {"paper", "the same models with the longer schedules of the paper's tables (hours on a CPU)",
       paper_preset},
      {"tiny", "every stage in seconds on stories260K (the end-to-end test)", tiny_preset}};
  return table;
}

// The named preset; UsageError listing the names for any other.
inline RunConfig preset(std::string_view name) {
  std::string names;
  for (const auto& p : presets()) {
    if (p.name == name) return p.make();
    names += (names.empty() ? "" : ", ") + std::string(p.name);
  }
  fail<UsageError>("--preset ", name, ": expected one of ", names);
}

// --preset NAME (or --preset=NAME) picks the defaults; every flag then applies on top of them.
inline RunConfig parse_run_flags(std::span<const std::string> args) {
  std::string name = "default";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--preset" && i + 1 < args.size()) name = args[i + 1];
    if (args[i].starts_with("--preset=")) name = args[i].substr(9);
  }
  return parse_flags<RunConfig>(args, preset(name));
}

// Help for `p4lm run`: the flags with the default preset's values, then the presets.
inline std::string run_help() {
  std::string help =
      flags_help<RunConfig>(default_preset()) + "\npresets (--preset NAME sets these defaults):\n";
  for (const auto& p : presets()) help += "  " + std::string(p.name) + "  " + std::string(p.summary) + '\n';
  return help;
}

}  // namespace p4lm::pipeline
