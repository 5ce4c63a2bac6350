#pragma once
// The pipeline in one call: every stage of P4LM, in-process, each writing its artifacts under
// config.out and reusing them when they are there (a killed run picks up where it stopped; SFT, the
// reward heads and RL resume from their last checkpoints). `p4lm run` is this function with flags.
//
//   auto c = p4lm::pipeline::preset("tiny");
//   *c.out = "/tmp/tiny";
//   auto r = p4lm::pipeline::run_main(c, std::cout);   // one line (and indented details) per stage
//
// The stages, their headers and their artifacts (completion marker first):
//   [1] data inventory (inventory.hpp): inventory.json, always rewritten
//   [2] collaborative filtering (cf_stage.hpp): cf/cf.safetensors, cf/config.json, cf/metrics.jsonl
//   [3] catalog, profiles, teacher corpus (data_stage.hpp): data/stats.json, data/*.jsonl, data/sft/
//   [4] SFT warm start (sft_stage.hpp): sft/result.json + sft/model.safetensors, checkpoint, curves
//   [5] pitches for test users (pitch_stage.hpp): pitches.jsonl, always rewritten
//   [6] reward models (reward/training.hpp): rewards/heldout.json + rewards/<reward>.safetensors
//   [7] RL, PPO with a KL penalty (rl_stage.hpp): rl/result.json + rl/policy.safetensors, curves
//   [8] Table 1 (evaluation_stage.hpp): table1.md, table1.csv, table1_pitches.jsonl; rows Base (the
//       base LM prompted with the profile text, no fine-tuning: text_prompted_model.hpp), SFT and
//       P4LM, each with own and shuffled users (CF embeddings; profiles for Base)
// and config.json (the RunConfig) and summary.json (what each stage did and its headline figures).
// Stages [6]-[8] need the sentence encoder of the model cache (scripts/fetch-models.sh); without it the
// run says so and stops after [5]. A plan with text conditioning (use_text_conditioning,
// text_variant_of) warm-starts SFT-Text (the profile as text in the prompt, no CF adapter) and has no RL
// stage: the policy of [7] reads CF embeddings. SFT-Text costs a second warm start, so the main job
// leaves it to `p4lm reproduce table1` (reproduce.hpp).

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/widths.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/pipeline/cf_stage.hpp"
#include "p4lm/pipeline/data_stage.hpp"
#include "p4lm/pipeline/evaluation_stage.hpp"
#include "p4lm/pipeline/inventory.hpp"
#include "p4lm/pipeline/pitch_stage.hpp"
#include "p4lm/pipeline/rl_stage.hpp"
#include "p4lm/pipeline/run_config.hpp"
#include "p4lm/pipeline/sft_stage.hpp"
#include "p4lm/pipeline/text_prompted_model.hpp"
#include "p4lm/reward/training.hpp"

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
  std::string base_notice;        // why the base model differs from the one asked for (empty: it does not)
  std::filesystem::path encoder;  // the reward models' sentence encoder (empty: none found)
  reward::RewardsTraining rewards;
  RlConfig rl;
  bool rl_enabled = true;
  EvaluationSettings evaluation;
  std::size_t table_pairs = 0;
  bool base_row = true;              // Table 1's Base row: the base LM prompted with the profile text
  train::PromptOptions text_prompt;  // prompts of the models that read the profile as text (Base, SFT-Text)
  int last_stage = 8;                // stages after it are not run
  nlohmann::json config;             // the RunConfig, written to out/config.json
};

// The prompt budget of the models that read the profile as text: the profile (up to ~90 SmolLM2
// tokens: tastes and three favourite titles), the movie (up to ~90), the task and the chat format
// around them; the CF-conditioned prompt's 96 would cut the movie off.
inline constexpr std::size_t text_prompt_tokens = 256;

// The warm start reads the profile as text (SFT-Text) instead of CF embeddings: no adapter, the text
// models' prompt budget (profile and movie), no RL stage (its policy reads CF embeddings).
inline void use_text_conditioning(RunPlan& p) {
  p.sft.conditioning = train::Conditioning::text;
  p.sft.prompt = p.text_prompt;
  p.rl_enabled = false;
  p.config["conditioning"] = "text";
}

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
  std::string base = *c.base;
  if (base != "smollm2" && base != "stories260K")
    fail<InvalidArgument>("--base: '", base, "', expected smollm2 or stories260K");
  if (base == "smollm2" && !smollm2_path()) {
    p.base_notice = "SmolLM2-135M-Instruct is not in the model cache " + model_cache_dir().string() +
                    " (scripts/fetch-models.sh): using the bundled stories260K";
    base = "stories260K";
  }
  if (base == "smollm2") {
    s.base = "smollm2";
  } else if (!p.root.empty()) {
    s.base = (p.root / "tiny-lm/stories260K/stories260K.bin").string();
    s.tokenizer = p.root / "tiny-lm/stories260K/tok512.bin";
  }
  s.sft.train_top_layers = static_cast<std::size_t>(*c.train_top_layers);
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

  if (!c.encoder->empty()) {
    p.encoder = *c.encoder;
  } else if (const auto minilm = minilm_path()) {
    p.encoder = *minilm;
  }
  p.rewards.data = s.data;
  p.rewards.out = p.out / "rewards";
  p.rewards.cf = cf_file;
  auto& ro = p.rewards.options;
  ro.max_train = static_cast<std::size_t>(*c.reward_train);
  ro.max_test = static_cast<std::size_t>(*c.reward_test);
  ro.steps = static_cast<std::size_t>(*c.reward_steps);
  if (*c.preset == "default") {  // token rows need more (docs/rewards.md); RunConfig has no room left
    ro.precision_max_train = 4000;
    ro.precision_steps = 1500;
  }  // tiny: the other heads' counts
  ro.seed = static_cast<std::uint64_t>(*c.seed);
  ro.progress = *c.progress;

  auto& r = p.rl;
  *r.sft = s.out.string();
  *r.data = s.data.string();
  *r.rewards = p.rewards.out.string();
  *r.encoder = p.encoder.string();
  *r.out = (p.out / "rl").string();
  *r.weights = *c.weights;
  *r.iterations = std::max<long>(*c.ppo.rl_iterations, 1);
  *r.batch_size = *c.ppo.rl_batch;
  *r.mini_batch_size = *c.ppo.rl_mini_batch;
  *r.ppo_epochs = *c.ppo.rl_epochs;
  *r.learning_rate = *c.ppo.rl_lr;
  *r.init_kl_coef = *c.ppo.rl_init_kl_coef;
  *r.target = *c.ppo.rl_target_kl;
  *r.response.response_length = *c.ppo.rl_response_length;
  // Standardised components, so that equal weights give the four rewards equal say: raw, the widest
  // spread (Bradley-Terry logits against precision's probabilities) drowns the others.
  *r.normalize = "standardize";
  *r.normalize_samples = 4 * *c.ppo.rl_batch;
  // Long runs on this mix end in pitches of one short sentence that the reward models score high
  // (docs/rl.md, "Choosing the iteration and a length floor"): a floor at 3/8 of the budget (48 of 128
  // tokens) outside the reward, and the policy of the best validation evaluation by the reward models.
  *r.response.min_response_length = *c.ppo.rl_response_length * 3 / 8;
  *r.response.short_response_penalty = 2;
  // With the floor alone, PPO meets it by saying its best sentence again: a pitch loses twice the
  // share of its token 4-grams it has said before (one sentence said twice: about 1).
  *r.response.repeated_ngram_penalty = 2;
  *r.eval_every = std::max<long>(1, *c.ppo.rl_iterations / 4);
  *r.eval_pairs = std::min<long>(16, *c.table_pairs);
  *r.eval_no_repeat_ngram_size = *c.eval_no_repeat_ngram_size;  // validation decodes as Table 1 does
  *r.keep = "best";                                             // table_pairs >= 2, so there are evaluations
  *r.save_every = std::max<long>(1, *c.ppo.rl_iterations / 4);
  *r.seed = *c.seed;
  *r.progress = *c.progress;
  p.rl_enabled = *c.ppo.rl_iterations > 0;

  p.evaluation.max_new_tokens = static_cast<std::size_t>(*c.ppo.rl_response_length);
  p.evaluation.no_repeat_ngram_size = static_cast<std::size_t>(*c.eval_no_repeat_ngram_size);
  p.table_pairs = static_cast<std::size_t>(*c.table_pairs);
  p.text_prompt = s.prompt;
  p.text_prompt.max_prompt_tokens = text_prompt_tokens;
  p.last_stage = static_cast<int>(*c.last_stage);
  p.config = to_json(c);
  return p;
}

struct RunResult {
  nlohmann::json inventory;
  std::optional<CfTrainResult> cf;  // empty when cf.safetensors was reused
  nlohmann::json data_stats;        // data/stats.json, built or reused
  train::WarmStartResult sft;
  std::vector<nlohmann::json> pitches;
  std::map<std::string, reward::Figures> rewards;  // held-out figures per reward model (empty: stage skipped)
  std::optional<RlResult> rl;
  std::vector<TableRow> table1;
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
    if (!rewards.empty()) j["rewards"] = rewards;
    if (rl) j["rl"] = rl->json();
    for (const auto& row : table1)
      j["table1"][row.name + (row.shuffled ? " (shuffled users)" : "")] = row.evaluation.means;
    return j;
  }
};

// The same run with its own warm start, RL and table in `dir`, sharing CF, data and reward models with
// `p` (p4lm reproduce's variants: single-stage warm start, SFT-Text, RL on one reward).
inline RunPlan variant_of(RunPlan p, const std::filesystem::path& dir) {
  p.out = dir;
  p.sft.out = dir / "sft";
  p.pitches.model = p.sft.out / "model.safetensors";
  p.pitches.out = dir / "pitches.jsonl";
  *p.rl.sft = p.sft.out.string();
  *p.rl.out = (dir / "rl").string();
  return p;
}

// The single-stage warm start (P4LM-S): the same number of SFT steps, all of them stage 2.
inline RunPlan single_stage_variant_of(RunPlan p, const std::filesystem::path& dir) {
  p = variant_of(std::move(p), dir);
  p.sft.sft.stage2_steps += p.sft.sft.stage1_steps;
  p.sft.sft.stage1_steps = 0;
  p.config["stage2_steps"] = p.sft.sft.stage2_steps, p.config["stage1_steps"] = 0;
  p.base_row = false;  // the main run's
  return p;
}

// SFT-Text next to the main run: the same data, base, SFT schedule and settings, the profile as text
// in the prompt instead of the CF adapters (the stage-1 adapter warm-up has nothing to train and is
// left out), no RL; its Table 1 holds the SFT-Text row alone (the main run has the Base row).
inline RunPlan text_variant_of(RunPlan p, const std::filesystem::path& dir) {
  p = variant_of(std::move(p), dir);
  use_text_conditioning(p);
  p.base_row = false;
  return p;
}

// Table 1's name of the warm start's row.
inline std::string sft_row_name(const RunPlan& p) {
  return p.sft.conditioning == train::Conditioning::text ? "SFT-Text" : "SFT";
}

// What Table 1's rows of a run are, and where the paper's other rows come from (below the table).
inline std::string table1_notes(const RunPlan& p) {
  std::string n = "Seed " + std::to_string(*p.cf.seed) + "; " + std::to_string(p.table_pairs) +
                  " held-out users, greedy pitches of at most " +
                  std::to_string(p.evaluation.max_new_tokens) +
                  " tokens; users: own, or shuffled (each pitch written for another test user, scored "
                  "against the real one).\n";
  if (p.base_row)
    n += "- Base: " + p.sft.base +
         " prompted with the task, the profile text and the movie, no fine-tuning; its shuffled row reads "
         "another user's profile.\n";
  if (p.sft.conditioning == train::Conditioning::text)
    n +=
        "- SFT-Text: the warm start with the profile as text in the prompt, no CF adapter; shuffled: another "
        "user's profile.\n";
  else
    n += std::string("- SFT: the ") + (p.sft.sft.stage1_steps ? "two-stage" : "single-stage") +
         " warm start with CF adapters; shuffled: another user's CF embedding.\n";
  if (p.rl_enabled && p.last_stage >= 7)
    n += "- P4LM: PPO on the reward mix (" + *p.rl.weights + ") from SFT.\n";
  if (p.base_row && p.sft.conditioning == train::Conditioning::cf)
    n += "- Not in this run: SFT-Text (a second warm start) and P4LM-S (a single-stage warm start and its "
         "RL); "
         "`p4lm reproduce table1` adds both per seed, with 95% confidence intervals over seeds.\n";
  return n;
}

// Runs every stage of a plan (see the file comment); `log` gets one line per stage and details.
inline RunResult run_plan(const RunPlan& plan, std::ostream& log = std::cout) {
  const auto& out = plan.out;
  const auto root = plan.root.empty() ? data_dir() : plan.root;
  std::filesystem::create_directories(out);
  io::write_file_atomically(out / "config.json", plan.config.dump(2) + "\n");
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

  const bool text = plan.sft.conditioning == train::Conditioning::text;
  const std::string trained = plan.sft.sft.train_top_layers
                                  ? "the top " + std::to_string(plan.sft.sft.train_top_layers) + " blocks"
                                  : std::string("the whole model");
  if (text)
    log << "[4] SFT-Text warm start of " << plan.sft.base
        << ": the profile as text in the prompt, no CF adapter, one stage training " << trained << std::endl;
  else
    log << "[4] SFT warm start of " << plan.sft.base
        << ": stage 1 CF adapters (transformer frozen), stage 2 the adapters and " << trained << std::endl;
  if (!plan.base_notice.empty()) log << "    notice: " << plan.base_notice << '\n';
  r.sft = run_sft(plan.sft);
  log << "    " << (r.sft.reused ? "reused: " : "") << r.sft.steps
      << " steps; held-out loss per pitch token: test " << r.sft.test_loss;
  if (text)
    log << "; link sentence only: " << r.sft.test_link_loss << '\n';
  else
    log << ", with shuffled user embeddings " << r.sft.test_loss_shuffled_users
        << "; link sentence only: " << r.sft.test_link_loss << " vs " << r.sft.test_link_loss_shuffled_users
        << '\n';

  log << "[5] pitches for test users" << std::endl;
  r.pitches = write_test_pitches(plan.pitches, [&](const train::PitchRequest& q, const std::string& pitch) {
    log << "    user " << q.user_id << " (" << q.profile << ")\n      movie " << q.movie_id << " " << q.title
        << ": " << pitch << '\n';
  });

  const auto finish = [&] {
    io::write_file_atomically(out / "summary.json", r.summary().dump(2) + "\n");
    log << "artifacts in " << out.string() << '\n';
    return r;
  };
  if (plan.last_stage < 6) return finish();
  if (plan.encoder.empty()) {
    log << "[6-8] reward models, RL and Table 1 skipped: all-MiniLM-L6-v2 is not in the model cache "
        << model_cache_dir().string() << " (run scripts/fetch-models.sh, or give --encoder)\n";
    return finish();
  }

  log << "[6] reward models: frozen sentence encoder, trained heads" << std::endl;
  const auto rewards_dir = plan.rewards.out;
  if (std::filesystem::exists(rewards_dir / "heldout.json")) {
    log << "    reusing " << rewards_dir.string() << '\n';
    r.rewards = nlohmann::json::parse(io::read_file(rewards_dir / "heldout.json"))
                    .get<std::map<std::string, reward::Figures>>();
  } else {
    auto features = std::make_shared<reward::TextFeatures>(plan.encoder);
    r.rewards =
        reward::train_rewards(features, plan.rewards, [&](const std::string& name, const reward::Figures& f) {
          log << "    " << name << ':';
          for (const auto& [k, v] : f) log << ' ' << k << '=' << format_metric(v);
          log << std::endl;
        });
  }

  std::filesystem::path policy = plan.sft.out / "model.safetensors";
  const bool with_rl = plan.rl_enabled && plan.last_stage >= 7;
  if (text && plan.last_stage >= 7)
    log << "[7] RL skipped: its policy reads CF embeddings, this warm start the profile as text\n";
  if (with_rl) {
    log << "[7] RL: PPO with a KL penalty on the reward mix (" << *plan.rl.weights << ")" << std::endl;
    const std::filesystem::path rl_out = *plan.rl.out;
    if (std::filesystem::exists(rl_out / "result.json") &&
        std::filesystem::exists(rl_out / "policy.safetensors")) {
      log << "    reusing " << rl_out.string() << '\n';
      r.rl.emplace();
      const auto j = nlohmann::json::parse(io::read_file(rl_out / "result.json"));
      r.rl->iterations = j.at("iterations").get<std::size_t>();
      r.rl->first_eval = j.at("first_eval"), r.rl->last_eval = j.at("last_eval");
      r.rl->best_eval = j.value("best_eval", nlohmann::json()), r.rl->kept = j.value("kept", "last");
    } else {
      r.rl = run_rl(plan.rl);
    }
    const auto shown = [&](const nlohmann::json& e, const char* key) {
      return e.contains(key) ? format_metric(e.at(key).get<double>()) : std::string("-");
    };
    log << "    " << r.rl->iterations << " iterations; evaluation reward "
        << shown(r.rl->first_eval, "eval/reward") << " -> " << shown(r.rl->last_eval, "eval/reward")
        << ", KL to the warm start " << shown(r.rl->last_eval, "objective/kl") << " nats\n";
    if (r.rl->kept == "best" && r.rl->best_eval.is_object())
      log << "    kept the policy of iteration " << r.rl->best_eval.at("iteration").get<double>()
          << ", the highest evaluation reward (" << shown(r.rl->best_eval, "eval/reward") << ")\n";
    policy = rl_out / "policy.safetensors";
  }

  if (plan.last_stage < 8) return finish();
  log << "[8] Table 1: " << plan.table_pairs
      << " held-out users, greedy pitches, own and shuffled users (CF embeddings; profiles for the models "
         "that read them as text)"
      << std::endl;
  {
    const auto reward = load_reward_mix(rewards_dir, *plan.rl.weights, plan.encoder, plan.sft.data, cf_file);
    const auto judge = eval::GoldJudge::load(plan.sft.data);
    const std::vector<std::vector<EvaluationPair>> pair_sets{
        evaluation_pairs(plan.sft.data, plan.table_pairs),
        evaluation_pairs(plan.sft.data, plan.table_pairs, /*shuffled=*/true)};
    const auto& own = pair_sets[0];
    const auto add = [&](const std::string& name, std::vector<ModelEvaluation> e) {
      r.table1.push_back({name, false, std::move(e[0])});
      r.table1.push_back({name, true, std::move(e[1])});
      log << "    " << name << ": done" << std::endl;
    };
    if (plan.base_row) {
      auto base = TextPromptedModel::base(plan.sft.base, plan.sft.tokenizer, plan.text_prompt);
      add("Base", evaluate_text_model(base, plan.sft.data, pair_sets, plan.evaluation, reward, &judge));
    }
    add(sft_row_name(plan),
        evaluate_model_file(plan.sft.out, plan.sft.data, pair_sets, plan.evaluation, reward, &judge));
    if (with_rl)
      add("P4LM", evaluate_model_file(policy, plan.sft.data, pair_sets, plan.evaluation, reward, &judge));
    const auto notes = table1_notes(plan);
    write_table(out, "table1", r.table1, notes);
    log << '\n' << table_markdown(r.table1, notes) << '\n';
    // The same held-out users from every model (before and after RL).
    const std::size_t shown = std::min<std::size_t>(3, own.size());
    for (std::size_t i = 0; i < shown; ++i) {
      const auto& first = r.table1.front().evaluation.rows[i];
      log << "    user " << first.at("user_id") << ", movie " << first.at("movie_id") << '\n';
      for (const auto& row : r.table1)
        if (!row.shuffled)
          log << "      " << row.name << ": " << row.evaluation.rows[i].at("pitch").get<std::string>()
              << '\n';
    }
    log << "    tables: " << (out / "table1.md").string() << ", " << (out / "table1.csv").string()
        << "; pitches: " << (out / "table1_pitches.jsonl").string() << '\n';
  }
  return finish();
}

// Runs every stage with the settings of `c` (p4lm run).
inline RunResult run_main(const RunConfig& c, std::ostream& log = std::cout) {
  return run_plan(plan_run(c), log);
}

}  // namespace p4lm::pipeline
