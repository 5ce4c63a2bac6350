#pragma once
// The pipeline in one call: every stage that exists, in-process, each writing its artifacts under
// config.out and reusing them when they are there (a killed run picks up where it stopped; SFT resumes
// from its last checkpoint). `p4lm run` is this function with flags.
//
//   auto c = p4lm::pipeline::preset("tiny");
//   *c.out = "/tmp/tiny";
//   auto r = p4lm::pipeline::run_main(c, std::cout);   // one line (and indented details) per stage
//
// The stages and their artifacts (completion marker first):
//   [1] data inventory             inventory.json (always rewritten)
//   [2] collaborative filtering    cf/cf.safetensors, cf/config.json, cf/metrics.jsonl       (cf_stage.hpp)
//   [3] catalog, profiles, teacher data/stats.json, data/*.jsonl, data/sft/, data/heldout/, ...
//   (data_stage.hpp) [4] SFT warm start             sft/result.json + sft/model.safetensors, checkpoint,
//   curves (sft_stage.hpp) [5] pitches for test users     pitches.jsonl (always rewritten) (pitch_stage.hpp)
// and config.json (the RunConfig) and summary.json (what each stage did and its headline figures).
//
// Stages still to come, each a function of its own header with a reflected config, called here after
// [5] and reusing its artifact the same way:
//   [6] reward models   precision (NLI), appeal, personalization and relevance judges trained on the
//                       data stage's datasets (the reward-model issue)
//   [7] RL              PPO with a KL penalty against the SFT model, rewards from [6] (the RL issue)
//   [8] evaluation      held-out rewards and the paper's tables for SFT and RL models (the tables issue)

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/widths.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/pipeline/cf_stage.hpp"
#include "p4lm/pipeline/data_stage.hpp"
#include "p4lm/pipeline/inventory.hpp"
#include "p4lm/pipeline/pitch_stage.hpp"
#include "p4lm/pipeline/run_config.hpp"
#include "p4lm/pipeline/sft_stage.hpp"

namespace p4lm::pipeline {

// Each stage's config as the run sets it. `root` is the data folder a user named (empty: the
// library's default search, core/data_dir.hpp); every path into it is passed explicitly, so nothing
// depends on P4LM_DATA being set for the process.
struct RunPlan {
  std::filesystem::path out, root;
  CfTrainConfig cf;
  DataBuildConfig data;
  train::WarmStartOptions sft;
  TestPitchOptions pitches;
};

inline RunPlan plan_run(const RunConfig& c) {
  cf::check_cf_dim(static_cast<int>(*c.cf_dim));
  RunPlan p;
  p.out = *c.out;
  if (!c.data->empty()) p.root = data_dir(std::filesystem::path(*c.data));
  const auto cf_file = p.out / "cf" / "cf.safetensors";

  *p.cf.out = (p.out / "cf").string();
  *p.cf.dim = static_cast<int>(*c.cf_dim);
  *p.cf.epochs = static_cast<int>(*c.cf_epochs);
  *p.cf.seed = *c.seed;
  *p.cf.progress = *c.progress;
  if (!p.root.empty()) *p.cf.data = (p.root / "movielens/ml-latest-small").string();

  *p.data.cf = cf_file.string();
  *p.data.out = (p.out / "data").string();
  *p.data.seed = *c.seed;
  *p.data.pitches_per_user = static_cast<int>(*c.pitches_per_user);
  *p.data.progress = *c.progress;
  if (!p.root.empty()) *p.data.overviews = (p.root / "plots/ml-latest-small_overviews.csv").string();

  auto& s = p.sft;
  s.data = p.out / "data";
  s.cf = cf_file;
  s.out = p.out / "sft";
  if (!p.root.empty()) {
    s.base = (p.root / "tiny-lm/stories260K/stories260K.bin").string();
    s.tokenizer = p.root / "tiny-lm/stories260K/tok512.bin";
  }
  s.max_train = static_cast<std::size_t>(*c.max_train);
  s.max_test = static_cast<std::size_t>(*c.max_test);  // bounds the final evaluation's time
  s.sft.seed = static_cast<std::uint64_t>(*c.seed);
  s.sft.stage1_steps = static_cast<std::size_t>(*c.stage1_steps);
  s.sft.stage2_steps = static_cast<std::size_t>(*c.stage2_steps);
  s.sft.batch_size = static_cast<std::size_t>(*c.batch_size);
  s.sft.stage1_lr = *c.stage1_lr;
  s.sft.stage2_lr = *c.stage2_lr;
  s.sft.stage2_adapter_lr = *c.stage2_adapter_lr;  // the young adapters learn faster than the LM
  s.sft.link_weight = *c.link_weight;              // the user-dependent sentence weighs more
  s.sft.eval_every = static_cast<std::size_t>(*c.eval_every);
  s.sft.eval_examples = static_cast<std::size_t>(*c.eval_examples);
  s.sft.checkpoint_every = static_cast<std::size_t>(*c.checkpoint_every);
  s.sft.progress = *c.progress;

  p.pitches.model = s.out / "model.safetensors";
  p.pitches.cf = cf_file;
  p.pitches.data = s.data;
  p.pitches.out = p.out / "pitches.jsonl";
  p.pitches.users = static_cast<std::size_t>(*c.pitch_users);
  p.pitches.seed = static_cast<std::uint64_t>(*c.seed);
  p.pitches.max_new_tokens = static_cast<std::size_t>(*c.pitch_tokens);
  return p;
}

struct RunResult {
  nlohmann::json inventory;
  std::optional<CfTrainResult> cf;  // empty when cf.safetensors was reused
  nlohmann::json data_stats;        // data/stats.json, built or reused
  train::WarmStartResult sft;
  std::vector<nlohmann::json> pitches;
  nlohmann::json summary() const {
    nlohmann::json j = nlohmann::json::object();
    j["cf"]["reused"] = !cf.has_value();
    if (cf) {
      j["cf"]["dim"] = cf->dim;
      j["cf"][cf->watched] = cf->metrics;
    }
    j["data"]["splits"] = data_stats.value("splits", nlohmann::json::object());
    j["sft"] = sft.json();
    j["sft"]["reused"] = sft.reused;
    j["pitches"] = pitches.size();
    return j;
  }
};

// Runs every stage (see the file comment); `log` gets one line per stage and indented details.
inline RunResult run_main(const RunConfig& c, std::ostream& log = std::cout) {
  const auto plan = plan_run(c);
  const auto& out = plan.out;
  const auto root = plan.root.empty() ? data_dir() : plan.root;
  std::filesystem::create_directories(out);
  io::write_file_atomically(out / "config.json", to_json(c).dump(2) + "\n");
  RunResult r;

  log << "[1] data inventory\n";
  r.inventory = inventory(root);
  for (const auto& [name, value] : r.inventory.items()) log << "    " << name << ": " << value.dump() << '\n';
  io::write_file_atomically(out / "inventory.json", r.inventory.dump(2) + "\n");

  const std::filesystem::path cf_file = *plan.data.cf;
  log << "[2] collaborative filtering (ALS)" << std::endl;
  if (std::filesystem::exists(cf_file)) {
    log << "    reusing " << cf_file.string() << '\n';
  } else {
    r.cf = train_cf(plan.cf);
    log << "    " << r.cf->watched << ':';
    for (const auto& [k, v] : r.cf->metrics) log << ' ' << k << '=' << format_metric(v);
    log << '\n';
    log << "    wrote " << cf_file.string() << '\n';
  }

  const std::filesystem::path corpus = *plan.data.out;
  log << "[3] catalog, profiles and the teacher's pitch corpus" << std::endl;
  if (std::filesystem::exists(corpus / "stats.json")) {
    log << "    reusing " << corpus.string() << '\n';
    r.data_stats = nlohmann::json::parse(io::read_file(corpus / "stats.json"));
  } else {
    r.data_stats = build_data(plan.data);
    log << "    wrote " << corpus.string() << ": " << r.data_stats["splits"]["train"]["sft"]
        << " train pitches (" << r.data_stats["splits"]["val"]["sft"] << " val, "
        << r.data_stats["splits"]["test"]["sft"] << " test)\n";
  }

  log << "[4] SFT warm start: stage 1 CF adapters (transformer frozen), stage 2 everything" << std::endl;
  r.sft = run_sft(plan.sft);
  log << "    " << (r.sft.reused ? "reused: " : "") << r.sft.steps
      << " steps; held-out loss per pitch token: test " << r.sft.test_loss
      << ", with shuffled user embeddings " << r.sft.test_loss_shuffled_users
      << "; link sentence only: " << r.sft.test_link_loss << " vs " << r.sft.test_link_loss_shuffled_users
      << '\n';

  log << "[5] pitches for test users" << std::endl;
  r.pitches = write_test_pitches(plan.pitches, [&](const train::PitchRequest& q, const std::string& pitch) {
    log << "    user " << q.user_id << " (" << q.profile << ")\n      movie " << q.movie_id << " " << q.title
        << ": " << pitch << '\n';
  });

  io::write_file_atomically(out / "summary.json", r.summary().dump(2) + "\n");
  log << "artifacts in " << out.string() << '\n';
  return r;
}

}  // namespace p4lm::pipeline
