// The pipeline as a library: the one list of CF widths, the presets and flag parsing of `p4lm run`,
// the mapping of the main preset onto the stages (the main job's settings), and the stages run
// in-process on tiny settings: CF training and its re-evaluation from the saved file, the data build,
// then run_main reusing those artifacts, training SFT and writing pitches, and a second run_main that
// reuses everything and writes the same pitches.

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
  CHECK(*main.stage2_steps == 50);
  const auto tiny = pipeline::parse_run_flags(args({"--stage2-steps", "8", "--preset", "tiny", "--seed=3"}));
  CHECK(*tiny.preset == "tiny");
  CHECK(*tiny.stage2_steps == 8);  // the flag wins over the preset, before or after it
  CHECK(*tiny.stage1_steps == 2);  // the preset's value
  CHECK(*tiny.cf_dim == 16);
  CHECK(*tiny.seed == 3);
  CHECK(*pipeline::parse_run_flags(args({"--preset=tiny"})).cf_epochs == 2);
  CHECK(message_of([] { pipeline::preset("huge"); }) == "--preset huge: expected one of default, tiny");
  for (const auto& p : pipeline::presets()) {
    CHECK(*p.make().preset == p.name);  // a preset's config.json says which it was
    CHECK(pipeline::run_help().find(std::string(p.name)) != std::string::npos);
  }
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
  CHECK(p.sft.sft.stage1_steps == 10);
  CHECK(p.sft.sft.stage2_steps == 50);
  CHECK(p.sft.sft.train_top_layers == 4);
  CHECK(p.sft.sft.batch_size == 8);
  CHECK(p.sft.sft.stage2_lr == 5e-4);
  CHECK(p.sft.sft.link_weight == 5);
  CHECK(p.rewards.options.max_train == 300);
  CHECK(p.rewards.options.steps == 300);
  CHECK(p.rewards.out == fs::path("/tmp/p4lm_main/rewards"));
  CHECK(*p.rl.sft == "/tmp/p4lm_main/sft");
  CHECK(*p.rl.rewards == "/tmp/p4lm_main/rewards");
  CHECK(*p.rl.iterations == 12);
  CHECK(*p.rl.batch_size == 8);
  CHECK(*p.rl.learning_rate == 5e-5);
  CHECK(*p.rl.weights == "precision=1,appeal=1,personalization=1,relevance=1");
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
  fs::remove_all(out);
}
