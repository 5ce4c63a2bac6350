// The pipeline as a library: the one list of CF widths, the presets and flag parsing of `p4lm run`,
// the mapping of the main preset onto the stages (the main job's settings), Table 1's rows (Base in the
// main run, SFT-Text and P4LM-S from reproduce's variants), and the stages run in-process on tiny
// settings: CF training and its re-evaluation from the saved file, the data build, then run_main
// reusing those artifacts, training SFT and writing pitches, a second run_main that reuses everything
// and writes the same pitches, the prompted base and an SFT-Text warm start evaluated on held-out users.

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "p4lm/io/atomic_file.hpp"
#include "p4lm/pipeline/reproduce.hpp"
#include "p4lm/pipeline/run.hpp"

namespace fs = std::filesystem;
using namespace p4lm;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

std::size_t count_lines(const fs::path& path) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

std::vector<std::string> args(std::initializer_list<const char*> list) {
  return {list.begin(), list.end()};
}

}  // namespace

TEST_CASE("one list of CF widths, one message for the others", "[pipeline][widths]") {
  CHECK(cf::compiled_dims == std::array<int, 3>{16, 32, 64});
  for (int dim : cf::compiled_dims)
    CHECK(cf::with_cf_dim(dim, [](auto d) { return decltype(d)::value; }) == dim);
  const std::string expected = "CF embedding width 128 is not supported (compiled widths: 16, 32, 64)";
  CHECK(message_of([] { cf::check_cf_dim(128); }) == expected);
  // Every stage refuses it with that message before doing any work.
  CHECK(message_of([] {
          pipeline::CfTrainConfig c;
          *c.dim = 128;
          *c.out = (fs::temp_directory_path() / "p4lm_test_pipeline_never").string();
          pipeline::train_cf(c);
        }) == expected);
  CHECK(message_of([] {
          pipeline::CfCompareConfig c;
          *c.dim = 128;
          pipeline::compare_cf(c);
        }) == expected);
  CHECK(message_of([] {
          pipeline::CfTuneConfig c;
          *c.dims = {16, 128};
          pipeline::tune_cf(c);
        }) == expected);
  CHECK(message_of([] {
          pipeline::plan_run(pipeline::parse_run_flags(args({"--cf-dim", "128"})));
        }) == expected);
  CHECK(message_of([] { cf::check_cf_dim(8); }).find("width 8 is not supported") != std::string::npos);
  CHECK_FALSE(fs::exists(fs::temp_directory_path() / "p4lm_test_pipeline_never"));
}

TEST_CASE("presets: named defaults that flags override, in any order", "[pipeline][presets]") {
  const auto main = pipeline::parse_run_flags({});
  CHECK(*main.preset == "default");
  CHECK(*main.stage2_steps == 100);
  const auto tiny = pipeline::parse_run_flags(args({"--stage2-steps", "8", "--preset", "tiny", "--seed=3"}));
  CHECK(*tiny.preset == "tiny");
  CHECK(*tiny.stage2_steps == 8);  // the flag wins over the preset, before or after it
  CHECK(*tiny.stage1_steps == 2);  // the preset's value
  CHECK(*tiny.cf_dim == 16);
  CHECK(*tiny.seed == 3);
  CHECK(*pipeline::parse_run_flags(args({"--preset=tiny"})).cf_epochs == 2);
  CHECK(*pipeline::parse_run_flags(args({"--last-stage", "5"})).last_stage == 5);
  CHECK(message_of([] {
          pipeline::parse_run_flags(args({"--last-stage", "9"}));
        }).find("--last-stage") != std::string::npos);
  CHECK(message_of([] { pipeline::preset("huge"); }) ==
        "--preset huge: expected one of default, paper, tiny");
  for (const auto& p : pipeline::presets()) {
    CHECK(*p.make().preset == p.name);  // a preset's config.json says which it was
    CHECK(pipeline::run_help().find(std::string(p.name)) != std::string::npos);
  }
}

TEST_CASE("the paper preset keeps the default's models and lengthens every schedule", "[pipeline][presets]") {
  const auto d = pipeline::preset("default"), p = pipeline::preset("paper");
  CHECK(*p.base == *d.base);
  CHECK(*p.cf_dim == *d.cf_dim);
  CHECK(*p.out == "runs/paper");
  CHECK(*p.stage2_steps > *d.stage2_steps);
  CHECK(*p.reward_train > *d.reward_train);
  CHECK(*p.ppo.rl_iterations * *p.ppo.rl_batch > *d.ppo.rl_iterations * *d.ppo.rl_batch);
  CHECK(*p.table_pairs > *d.table_pairs);
  CHECK(*p.ppo.rl_response_length == *d.ppo.rl_response_length);
  const auto plan = pipeline::plan_run(p);
  CHECK(*plan.rl.normalize_samples == 64);
  CHECK(plan.sft.sft.stage2_steps == 800);
  CHECK(*p.batch_size == *d.batch_size);  // 8x the sequences at the same batch
}

TEST_CASE("the default preset gives the stages the main job's settings", "[pipeline][presets]") {
  // The main job's measured budget (README) and its Table 1 (docs/results.md) depend on these.
  auto c = pipeline::preset("default");
  *c.out = "/tmp/p4lm_main";
  const auto p = pipeline::plan_run(c);
  CHECK(*p.cf.out == "/tmp/p4lm_main/cf");
  CHECK(*p.cf.dim == 32);
  CHECK(*p.cf.epochs == 15);
  CHECK(*p.cf.seed == 1);
  CHECK(*p.cf.model == "als");
  CHECK(p.cf.data->empty());  // the library's default data folder
  CHECK(*p.data.cf == "/tmp/p4lm_main/cf/cf.safetensors");
  CHECK(*p.data.pitches_per_user == 20);
  // SmolLM2 when the model cache has it; otherwise the bundled model, with a notice.
  CHECK(p.sft.base == (smollm2_path() ? "smollm2" : "stories260K"));
  CHECK(p.base_notice.empty() == smollm2_path().has_value());
  CHECK(p.sft.max_test == 32);
  CHECK(p.sft.sft.stage1_steps == 20);
  CHECK(p.sft.sft.stage2_steps == 100);
  CHECK(p.sft.sft.train_top_layers == 4);
  CHECK(p.sft.sft.batch_size == 4);
  CHECK(p.sft.sft.stage2_lr == 3e-3);
  CHECK(p.sft.sft.link_weight == 1);
  CHECK(p.rewards.options.max_train == 300);
  CHECK(p.rewards.options.precision_max_train == 4000);  // token rows need more (docs/rewards.md)
  CHECK(p.rewards.options.precision_steps == 1500);
  CHECK(p.rewards.options.steps == 300);
  CHECK(p.rewards.out == fs::path("/tmp/p4lm_main/rewards"));
  CHECK(*p.rl.sft == "/tmp/p4lm_main/sft");
  CHECK(*p.rl.rewards == "/tmp/p4lm_main/rewards");
  CHECK(*p.rl.iterations == 12);
  CHECK(*p.rl.batch_size == 8);
  CHECK(*p.rl.learning_rate == 5e-5);
  CHECK(*p.rl.weights == "precision=1,appeal=1,personalization=1,relevance=1");
  CHECK(*p.rl.response.response_length == 128);  // the teacher's pitches fit (run_config.hpp)
  CHECK(p.evaluation.max_new_tokens == 128);
  // Plain greedy evaluation pitches (docs/rl.md, "A decoder that refuses repeated n-grams"); the flag
  // reaches both the RL stage's validation and Table 1.
  CHECK(p.evaluation.no_repeat_ngram_size == 0);
  CHECK(*p.rl.eval_no_repeat_ngram_size == 0);
  const auto refusing = pipeline::plan_run(pipeline::parse_run_flags(std::vector<std::string>{
      "--preset", "default", "--eval-no-repeat-ngram-size", "3", "--rl-batch", "4"}));
  CHECK(refusing.evaluation.no_repeat_ngram_size == 3);
  CHECK(*refusing.rl.eval_no_repeat_ngram_size == 3);
  CHECK(*refusing.rl.batch_size == 4);  // a flag of the RL group
  CHECK(refusing.evaluation.decoding(7).no_repeat_ngram_size == 3);
  CHECK(refusing.evaluation.decoding(7).eos == 7);
  CHECK(refusing.evaluation.decoding(7).temperature == 0);
  CHECK(*p.rl.normalize == "standardize");
  CHECK(*p.rl.normalize_samples == 32);
  CHECK(p.table_pairs == 16);
  CHECK(p.last_stage == 8);
  // A variant shares CF, data and the reward models and moves the rest.
  const auto v = pipeline::variant_of(p, "/tmp/p4lm_main/single");
  CHECK(v.sft.out == fs::path("/tmp/p4lm_main/single/sft"));
  CHECK(*v.rl.sft == "/tmp/p4lm_main/single/sft");
  CHECK(*v.rl.out == "/tmp/p4lm_main/single/rl");
  CHECK(v.rewards.out == p.rewards.out);
  CHECK(*v.data.cf == *p.data.cf);
}

TEST_CASE("Table 1's rows: Base in the main run, SFT-Text and P4LM-S in reproduce's", "[pipeline][table1]") {
  auto c = pipeline::preset("default");
  *c.out = "/tmp/p4lm_main";
  const auto p = pipeline::plan_run(c);
  // The main run scores the base LM prompted with the profile text: decoding only, no second SFT.
  CHECK(p.base_row);
  CHECK(p.sft.conditioning == train::Conditioning::cf);
  CHECK(pipeline::sft_row_name(p) == "SFT");
  CHECK(p.rl_enabled);
  CHECK(p.sft.prompt.max_prompt_tokens == 96);
  CHECK(p.text_prompt.max_prompt_tokens == pipeline::text_prompt_tokens);  // profile and movie both fit
  CHECK(p.text_prompt.marker == p.sft.prompt.marker);
  const auto notes = pipeline::table1_notes(p);
  CHECK(notes.find("- Base: ") != std::string::npos);
  CHECK(notes.find("p4lm reproduce table1") != std::string::npos);  // where SFT-Text and P4LM-S are

  // SFT-Text: the same data, base and schedule, the profile as text, no adapter, no RL, no Base row.
  const auto t = pipeline::text_variant_of(p, "/tmp/p4lm_main/sft-text");
  CHECK(t.sft.conditioning == train::Conditioning::text);
  CHECK(pipeline::sft_row_name(t) == "SFT-Text");
  CHECK_FALSE(t.rl_enabled);
  CHECK_FALSE(t.base_row);
  CHECK(t.sft.out == fs::path("/tmp/p4lm_main/sft-text/sft"));
  CHECK(t.sft.base == p.sft.base);
  CHECK(t.sft.data == p.sft.data);
  CHECK(t.sft.sft.stage2_steps == p.sft.sft.stage2_steps);
  CHECK(t.sft.sft.stage2_lr == p.sft.sft.stage2_lr);
  CHECK(t.sft.sft.train_top_layers == p.sft.sft.train_top_layers);
  CHECK(t.sft.prompt.max_prompt_tokens == pipeline::text_prompt_tokens);
  CHECK(t.rewards.out == p.rewards.out);
  CHECK(pipeline::table1_notes(t).find("- SFT-Text: ") != std::string::npos);
  // P4LM-S: the same number of steps, all of them stage 2.
  const auto s = pipeline::single_stage_variant_of(p, "/tmp/p4lm_main/single-stage");
  CHECK(s.sft.sft.stage1_steps == 0);
  CHECK(s.sft.sft.stage2_steps == 120);
  CHECK(s.rl_enabled);
  CHECK_FALSE(s.base_row);

  // reproduce's runs per seed: table1 needs the main run and both variants, in their seed's folder.
  pipeline::ReproduceConfig r;
  *r.what = "table1";
  *r.out = "/tmp/p4lm_repro";
  const auto runs = pipeline::reproduce_runs(r, 2);
  REQUIRE(runs.size() == 3);
  CHECK(runs[0].name == "main");
  CHECK(runs[0].plan.out == fs::path("/tmp/p4lm_repro/seed-2/main"));
  CHECK(runs[0].plan.base_row);
  CHECK(*runs[0].plan.cf.seed == 2);
  CHECK(runs[1].name == "single-stage");
  CHECK(runs[1].plan.sft.sft.stage1_steps == 0);
  CHECK(runs[2].name == "sft-text");
  CHECK(runs[2].plan.sft.conditioning == train::Conditioning::text);
  CHECK(runs[2].plan.sft.out == fs::path("/tmp/p4lm_repro/seed-2/sft-text/sft"));
  CHECK(runs[2].plan.sft.sft.seed == 2);
  CHECK(runs[2].plan.rewards.out == runs[0].plan.rewards.out);
  *r.what = "table3";
  CHECK(pipeline::reproduce_runs(r, 1).size() == 1);
  *r.what = "warmstart";
  CHECK(pipeline::reproduce_runs(r, 1).size() == 2);
  // The paper's order, whatever order the runs finish in.
  CHECK(pipeline::table1_rank("Base") < pipeline::table1_rank("SFT-Text"));
  CHECK(pipeline::table1_rank("SFT-Text") < pipeline::table1_rank("SFT"));
  CHECK(pipeline::table1_rank("P4LM") < pipeline::table1_rank("P4LM-S"));
}

TEST_CASE("the stages in-process on tiny settings, each reused from its artifact", "[pipeline][run]") {
  const auto out = fs::temp_directory_path() / "p4lm_test_pipeline_run";
  fs::remove_all(out);
  auto c = pipeline::preset("tiny");
  *c.out = out.string();
  *c.progress = false;
  *c.last_stage = 5;  // rewards, RL and Table 1: cli/run_tiny_end_to_end
  const auto plan = pipeline::plan_run(c);

  // [2] CF on its own: the saved file re-evaluates to the metrics the training reported.
  const auto cf = pipeline::train_cf(plan.cf);
  REQUIRE(fs::exists(out / "cf" / "cf.safetensors"));
  CHECK(cf.dim == 16);
  CHECK(cf.watched == "test");
  CHECK(count_lines(out / "cf" / "metrics.jsonl") == 2);  // one record per epoch
  pipeline::CfEvalConfig eval;
  *eval.model = (out / "cf" / "cf.safetensors").string();
  const auto again = pipeline::evaluate_cf(eval);
  CHECK(again["dim"] == 16);
  for (const auto& [k, v] : cf.metrics)
    CHECK(again["test"]["als"][k].get<double>() == Approx(v).epsilon(1e-9));
  CHECK(again["test"]["bias-only"]["rmse"].get<double>() > cf.metrics.at("rmse") - 0.5);

  // [3] data on its own, from that CF model.
  const auto stats = pipeline::build_data(plan.data);
  CHECK(stats["config"]["genre_taste"] == "cf");  // "auto" resolved: a CF model was given
  const auto train_pitches = stats["splits"]["train"]["sft"].get<std::size_t>();
  CHECK(train_pitches > 0);
  CHECK(count_lines(out / "data" / "sft" / "train.jsonl") == train_pitches);

  // run_main finds both artifacts and reuses them; it trains SFT and writes the pitches.
  std::ostringstream log1;
  const auto first = pipeline::run_main(c, log1);
  CHECK(log1.str().find("[2] collaborative filtering") != std::string::npos);
  CHECK(log1.str().find("reusing " + (out / "cf" / "cf.safetensors").string()) != std::string::npos);
  CHECK(log1.str().find("reusing " + (out / "data").string()) != std::string::npos);
  CHECK_FALSE(first.cf.has_value());
  CHECK_FALSE(first.sft.reused);
  CHECK(first.sft.steps == 6);
  CHECK(std::isfinite(first.sft.test_loss));
  CHECK(std::isfinite(first.sft.test_loss_shuffled_users));
  REQUIRE(first.pitches.size() == 2);
  CHECK(count_lines(out / "pitches.jsonl") == 2);
  for (const auto& row : first.pitches) CHECK_FALSE(row["pitch"].get<std::string>().empty());
  const auto summary = nlohmann::json::parse(io::read_file(out / "summary.json"));
  CHECK(summary["sft"]["steps"] == 6);
  CHECK(summary["pitches"] == 2);
  CHECK(nlohmann::json::parse(io::read_file(out / "config.json"))["preset"] == "tiny");

  // Again: every stage reused, the same pitches (seeded).
  std::ostringstream log2;
  const auto second = pipeline::run_main(c, log2);
  CHECK(second.sft.reused);
  CHECK(second.sft.test_loss == first.sft.test_loss);
  CHECK(second.pitches == first.pitches);
  CHECK(log2.str().find("reused: 6 steps") != std::string::npos);

  // Table 1's Base row: the base LM prompted with the task, the profile and the movie; the shuffled
  // control puts another test user's profile in the prompt. Greedy, so the same pitches again.
  const auto data = plan.sft.data;
  auto base = pipeline::TextPromptedModel::base(plan.sft.base, plan.sft.tokenizer, plan.text_prompt);
  CHECK(base.zero_shot());
  const std::vector<std::vector<pipeline::EvaluationPair>> pair_sets{
      pipeline::evaluation_pairs(data, 3), pipeline::evaluation_pairs(data, 3, true)};
  const train::PitchSources sources(data);
  const auto& own = pair_sets[0];
  // The validation split (`p4lm evaluate --split val`) holds other users than the test split.
  const auto val = pipeline::evaluation_pairs(data, 3, false, pipeline::parse_heldout_split("val"));
  REQUIRE(val.size() == 3);
  for (const auto& v : val) {
    CHECK(v.embedding_user_id == v.user_id);
    for (const auto& t : own) CHECK(v.user_id != t.user_id);
  }
  CHECK(pipeline::parse_heldout_split("test") == pipeline::HeldoutSplit::test);
  CHECK(message_of([] { pipeline::parse_heldout_split("train"); }) ==
        "--split 'train': expected val or test");
  const auto request = sources.request(own[0].user_id, own[0].movie_id);
  const auto text = base.prompt_text(request);
  CHECK(text.starts_with(std::string(train::zero_shot_instruction)));
  CHECK(text.find("Viewer: " + request.profile) != std::string::npos);
  CHECK(text.find("Movie: " + request.title) != std::string::npos);
  CHECK(base.prompt(request).front() == base.codec().bos);
  const pipeline::EvaluationSettings settings{.max_new_tokens = 6, .batch = 2};
  const auto e = pipeline::evaluate_text_model(base, data, pair_sets, settings, {}, nullptr);
  REQUIRE(e.size() == 2);
  REQUIRE(e[1].rows.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(e[0].rows[i]["embedding_user_id"] == own[i].user_id);
    CHECK(e[1].rows[i]["user_id"] == own[i].user_id);  // scored against the real user
    CHECK(e[1].rows[i]["embedding_user_id"] != own[i].user_id);
    CHECK(e[0].rows[i]["tokens"].get<double>() <= 6);
  }
  CHECK(e[0].means.count("tokens") == 1);
  const auto base_again = pipeline::evaluate_text_model(base, data, {own}, settings, {}, nullptr);
  CHECK(base_again[0].rows == e[0].rows);
  // The SFT run reads CF embeddings: the text-prompted loader refuses it and says why.
  CHECK(pipeline::pitch_model_conditioning(out / "sft") == train::Conditioning::cf);
  CHECK_THROWS_WITH(pipeline::TextPromptedModel::open(out / "sft"), Catch::Contains("reads CF embeddings"));

  // SFT-Text beside it: CF, data shared; its warm start reads the profile as text, no RL.
  auto text_plan = pipeline::text_variant_of(plan, out / "sft-text");
  std::ostringstream log3;
  const auto sft_text = pipeline::run_plan(text_plan, log3);
  CHECK(log3.str().find("[4] SFT-Text warm start") != std::string::npos);
  CHECK(sft_text.sft.steps == 4);  // stage 2 only: stage 1 trains adapters, and there are none
  CHECK(std::isfinite(sft_text.sft.test_loss));
  REQUIRE(sft_text.pitches.size() == 2);
  CHECK(sft_text.pitches[0]["prompt"].get<std::string>().starts_with("Viewer: "));
  CHECK(pipeline::pitch_model_conditioning(out / "sft-text" / "sft") == train::Conditioning::text);
  auto loaded = pipeline::TextPromptedModel::open(out / "sft-text" / "sft");
  CHECK_FALSE(loaded.zero_shot());
  CHECK(loaded.prompt_options().max_prompt_tokens == pipeline::text_prompt_tokens);
  CHECK(loaded.prompt_text(request).starts_with("Viewer: " + request.profile));
  const auto t = pipeline::evaluate_model_file(out / "sft-text" / "sft", data, {own}, settings, {}, nullptr);
  REQUIRE(t.size() == 1);
  CHECK(t[0].rows.size() == 3);
  fs::remove_all(out);
}
