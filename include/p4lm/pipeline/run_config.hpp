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
//   main  the main job (the default): CF dim 32, SFT 60 + 240 steps, 300 test sequences
//   tiny  the end-to-end check: CF dim 16 for 2 epochs, 2 pitches per user, SFT 2 + 4 steps of
//         batch 4, 32 test sequences, 2 sample pitches of at most 48 tokens (seconds, not minutes)
// To add one (the coming `default` and `paper`), add a function returning its RunConfig and a row to
// presets(); its name is then valid for --preset and for preset(), and the CLI's help lists it.

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

struct RunConfig {
  Param<std::string> preset{"main", "named defaults the other flags override: main or tiny"};
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<std::string> out{"runs/main", "output folder for every artifact of the run"};
  Param<long> seed{1, "seed of every random choice in the run"};
  // [2] CF
  Param<long> cf_dim{32, "CF embedding width (16, 32 or 64)"};
  Param<long> cf_epochs{15, "ALS epochs", at_least(1)};
  // [3] data
  Param<long> pitches_per_user{20, "teacher pitches per user", at_least(1)};
  // [4] SFT
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
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::RunConfig, preset, data, out, seed, cf_dim, cf_epochs,
                        pitches_per_user, stage1_steps, stage2_steps, batch_size, stage1_lr, stage2_lr,
                        stage2_adapter_lr, link_weight, eval_every, eval_examples, checkpoint_every,
                        max_train, max_test, pitch_users, pitch_tokens, progress);

namespace p4lm::pipeline {

struct Preset {
  std::string_view name;
  std::string_view summary;
  RunConfig (*make)();
};

// The main job: RunConfig's own defaults (docs/results.md reports its figures).
inline RunConfig main_preset() {
  return {};
}

// The whole pipeline on stories260K in seconds: what the end-to-end test runs.
inline RunConfig tiny_preset() {
  RunConfig c;
  c.preset = "tiny";
  c.out = "runs/tiny";
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
  return c;
}

inline const std::vector<Preset>& presets() {
  static const std::vector<Preset> table{
      {"main", "the main job on the bundled data (CF dim 32, SFT 60 + 240 steps)", main_preset},
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
  std::string name = "main";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--preset" && i + 1 < args.size()) name = args[i + 1];
    if (args[i].starts_with("--preset=")) name = args[i].substr(9);
  }
  return parse_flags<RunConfig>(args, preset(name));
}

// Help for `p4lm run`: the flags with the main preset's defaults, then the presets.
inline std::string run_help() {
  std::string help = flags_help<RunConfig>() + "\npresets (--preset NAME sets these defaults):\n";
  for (const auto& p : presets()) help += "  " + std::string(p.name) + "  " + std::string(p.summary) + '\n';
  return help;
}

}  // namespace p4lm::pipeline
