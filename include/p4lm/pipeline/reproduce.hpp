#pragma once
// The paper's experiments from one call (`p4lm reproduce`): each is a set of pipeline runs per seed
// and a table or plot over them, written under `out`:
//
//   table1     Base, SFT and P4LM of the main run, SFT-Text (a warm start reading the profile as text,
//              no CF adapter), and P4LM-S (PPO from a single-stage warm start) with its SFT, each with
//              own and shuffled users; mean and 95% confidence interval over the seeds.
//   table3     reward hacking: RL on each single reward and on the mix from the same warm start, scored
//              on all four rewards and by the gold judge, one sample pitch per row; each seed's own
//              rows also in out/seed-<s>/table3.{md,csv}.
//   warmstart  the RL evaluation reward per iteration after the two-stage and single-stage warm starts.
//   overopt    the proxy reward and the gold scores against the KL from the warm start, along the main
//              run's RL (Gao et al.'s plot), as the change from the warm start.
//
//   p4lm::pipeline::ReproduceConfig c;
//   *c.what = "table1"; *c.preset = "tiny"; *c.seeds = "1,2"; *c.out = "/tmp/repro";
//   p4lm::pipeline::reproduce(c, std::cout);
//
// A seed changes everything a seed should: the CF split and training, the pitch corpus drawn from the
// data, the warm start, the reward heads and the RL samples (RunConfig::seed goes to every stage).
// Runs live in out/seed-<s>/{main,single-stage,sft-text,rl-<reward>} (reproduce_runs lists the pipeline
// runs of a seed); each reuses what a killed or earlier reproduce left, so `all` after `table1` only
// adds the missing runs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/eval/svg_plot.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/pipeline/run.hpp"

namespace p4lm::pipeline {

struct ReproduceConfig {
  Param<std::string> what{"all", "table1, table3, warmstart, overopt or all"};
  Param<std::string> preset{"default", "the runs' settings (a preset of p4lm run)"};
  Param<std::string> seeds{"1,2,3", "comma list of seeds; each changes split, corpus, SFT, rewards and RL"};
  Param<std::string> out{"runs/reproduce", "output folder: the tables, plots and every run"};
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::ReproduceConfig, what, preset, seeds, out, progress);

namespace p4lm::pipeline {

// "1,2,3" -> {1, 2, 3}; InvalidArgument naming a bad or repeated entry.
inline std::vector<long> parse_seeds(const std::string& s) {
  std::vector<long> seeds;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) fail<InvalidArgument>("--seeds: '", item, "' is not an integer");
    if (std::find(seeds.begin(), seeds.end(), v) != seeds.end())
      fail<InvalidArgument>("--seeds: ", v, " is given twice");
    seeds.push_back(v);
  }
  if (seeds.empty()) fail<InvalidArgument>("--seeds: no seed given");
  return seeds;
}

// Two-sided 95% Student-t quantile for n - 1 degrees of freedom (n samples).
inline double t_quantile_95(std::size_t n) {
  static constexpr double t[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086};
  const std::size_t dof = n - 1;
  return dof < std::size(t) ? t[dof] : 1.96;
}

// Mean and 95% confidence half-width of `v` (half-width 0 for one value).
struct MeanCi {
  double mean = 0, half_width = 0;
  std::size_t n = 0;
};
inline MeanCi mean_ci(const std::vector<double>& v) {
  MeanCi m;
  m.n = v.size();
  if (v.empty()) return m;
  for (double x : v) m.mean += x / double(v.size());
  if (v.size() < 2) return m;
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.half_width = t_quantile_95(v.size()) * std::sqrt(ss / double(v.size() - 1) / double(v.size()));
  return m;
}

// Rows with the same (name, users) over seeds, as "mean ± half-width" cells.
struct SeededRow {
  std::string name;
  bool shuffled = false;
  std::map<std::string, std::vector<double>> values;  // column key -> one value per seed
  std::string sample;                                 // a pitch of the first seed's first pair
};

inline void add_row(std::vector<SeededRow>& rows, const TableRow& r, const std::string& name) {
  auto it = std::find_if(rows.begin(), rows.end(),
                         [&](const SeededRow& x) { return x.name == name && x.shuffled == r.shuffled; });
  if (it == rows.end()) {
    rows.push_back(
        {name, r.shuffled, {}, r.evaluation.rows.empty() ? "" : r.evaluation.rows.front().at("pitch")});
    it = rows.end() - 1;
  }
  for (const auto& [k, v] : r.evaluation.means) it->values[k].push_back(v);
}

inline std::string format_mean_ci(const std::vector<double>& v) {
  const auto m = mean_ci(v);
  return m.n < 2 ? format_cell(m.mean) : format_cell(m.mean) + " ± " + format_cell(m.half_width);
}

inline void write_seeded_table(const std::filesystem::path& dir, const std::string& stem,
                               const std::vector<SeededRow>& rows, std::size_t seeds, bool with_sample,
                               const std::string& notes = {}) {
  std::ostringstream md, csv;
  md << "| model | users |";
  csv << "model,users,seeds";
  for (const auto& c : table1_columns())
    md << ' ' << c.title << " |", csv << ',' << c.key << ',' << c.key << "/ci95";
  if (with_sample) md << " sample pitch (first seed, first user) |";
  md << "\n| --- | --- |";
  for (std::size_t i = 0; i < table1_columns().size() + (with_sample ? 1 : 0); ++i) md << " --- |";
  md << '\n';
  csv << '\n';
  csv.precision(9);
  for (const auto& r : rows) {
    md << "| " << r.name << " | " << (r.shuffled ? "shuffled" : "own") << " |";
    csv << r.name << ',' << (r.shuffled ? "shuffled" : "own") << ',' << seeds;
    for (const auto& c : table1_columns()) {
      const auto it = r.values.find(c.key);
      md << ' ' << (it == r.values.end() ? "-" : format_mean_ci(it->second)) << " |";
      if (it == r.values.end()) {
        csv << ",,";
      } else {
        const auto m = mean_ci(it->second);
        csv << ',' << m.mean << ',' << m.half_width;
      }
    }
    if (with_sample) {
      std::string s = r.sample;
      std::replace(s.begin(), s.end(), '\n', ' ');
      std::replace(s.begin(), s.end(), '|', '/');
      md << ' ' << s << " |";
    }
    md << '\n';
    csv << '\n';
  }
  if (!notes.empty()) md << '\n' << notes;
  io::write_file_atomically(dir / (stem + ".md"), md.str());
  io::write_file_atomically(dir / (stem + ".csv"), csv.str());
}

// Table 1's rows in the paper's order, then this project's own.
inline int table1_rank(const std::string& name) {
  static const std::vector<std::string> order{"Base", "SFT-Text", "SFT",
                                              "P4LM", "P4LM-S",   "SFT (single-stage)"};
  const auto it = std::find(order.begin(), order.end(), name);
  return static_cast<int>(it - order.begin());
}

inline const std::string& table1_reproduce_notes() {
  static const std::string n =
      "Mean ± 95% confidence interval (Student t) over the seeds; a seed changes the CF split and training, "
      "the pitch corpus, the warm starts, the reward heads and RL. Users: own, or shuffled (each pitch "
      "written from another test user's CF embedding, or profile for Base and SFT-Text, scored against the "
      "real user).\n"
      "- Base: the base LM prompted with the task, the profile text and the movie, no fine-tuning.\n"
      "- SFT-Text: the warm start with the profile as text in the prompt and no CF adapter (the SFT "
      "schedule's stage 2; stage 1 trains adapters only).\n"
      "- SFT, P4LM: the two-stage warm start with CF adapters, then PPO on the reward mix.\n"
      "- P4LM-S: PPO from a single-stage warm start (SFT (single-stage): the same steps, all of them "
      "stage 2); this reading of the paper's row is this project's.\n"
      "The main job (`p4lm run`) has Base, SFT and P4LM for one seed; SFT-Text and P4LM-S each cost "
      "another warm start and come from here.\n";
  return n;
}

// One pipeline run of a seed: its name (its folder under out/seed-<s>) and its plan.
struct ReproduceRun {
  std::string name;
  RunPlan plan;
};

// The pipeline runs of one seed that c.what needs, the main run first; the variants share its CF,
// data and reward models (variant_of). table1: main, single-stage, sft-text; warmstart: main,
// single-stage; table3 and overopt: main (table3's RL runs per reward are RL stages, not runs).
inline std::vector<ReproduceRun> reproduce_runs(const ReproduceConfig& c, long seed) {
  RunConfig rc = preset(*c.preset);
  *rc.seed = seed;
  *rc.progress = *c.progress;
  const auto seed_dir = std::filesystem::path(*c.out) / ("seed-" + std::to_string(seed));
  *rc.out = (seed_dir / "main").string();
  if (*rc.ppo.rl_iterations == 0) fail<InvalidArgument>("reproduce: preset ", *c.preset, " has no RL stage");
  const auto wanted = [&](const std::string& w) { return *c.what == "all" || *c.what == w; };
  const RunPlan main = plan_run(rc);
  std::vector<ReproduceRun> runs{{"main", main}};
  if (wanted("table1") || wanted("warmstart"))
    runs.push_back({"single-stage", single_stage_variant_of(main, seed_dir / "single-stage")});
  if (wanted("table1")) runs.push_back({"sft-text", text_variant_of(main, seed_dir / "sft-text")});
  return runs;
}

// metrics.jsonl rows of an RL run that carry an evaluation.
inline std::vector<nlohmann::json> rl_eval_rows(const std::filesystem::path& rl_dir) {
  std::vector<nlohmann::json> rows;
  io::for_each_jsonl(rl_dir / "metrics.jsonl", [&](const nlohmann::json& j, std::size_t) {
    if (j.contains("eval/reward")) rows.push_back(j);
  });
  return rows;
}

inline void reproduce(const ReproduceConfig& c, std::ostream& log) {
  const std::vector<std::string> all{"table1", "table3", "warmstart", "overopt"};
  if (*c.what != "all" && std::find(all.begin(), all.end(), *c.what) == all.end())
    fail<InvalidArgument>("reproduce: '", *c.what, "', expected table1, table3, warmstart, overopt or all");
  const auto wanted = [&](const std::string& w) { return *c.what == "all" || *c.what == w; };
  const auto seeds = parse_seeds(*c.seeds);
  const std::filesystem::path out = *c.out;
  std::filesystem::create_directories(out);

  std::vector<SeededRow> table1, table3;
  std::vector<eval::Series> warm, over;
  for (const long seed : seeds) {
    const auto seed_dir = out / ("seed-" + std::to_string(seed));
    const auto runs = reproduce_runs(c, seed);
    const auto& plan = runs.front().plan;
    std::map<std::string, RunResult> results;
    for (const auto& [name, p] : runs) {
      log << "== seed " << seed << ": " << (name == "main" ? "the main run" : name) << " (" << p.out.string()
          << ")" << std::endl;
      results[name] = run_plan(p, log);
      if (name == "main" && results[name].table1.empty())
        fail<InvalidArgument>("reproduce: the reward models' encoder is missing (scripts/fetch-models.sh)");
    }
    const auto& main = results.at("main");
    if (wanted("table1")) {
      for (const auto& r : main.table1) add_row(table1, r, r.name);
      for (const auto& r : results.at("single-stage").table1)
        add_row(table1, r, r.name == "P4LM" ? "P4LM-S" : "SFT (single-stage)");
      for (const auto& r : results.at("sft-text").table1) add_row(table1, r, r.name);
    }
    if (wanted("table3")) {
      // RL on each reward alone from the main run's warm start, evaluated like the main run's rows.
      const auto sft_loader = rl::PitchPolicyLoader::open(plan.sft.out);
      const auto mix =
          load_reward_mix(plan.rewards.out, *plan.rl.weights, plan.encoder, plan.sft.data, sft_loader);
      const auto judge = eval::GoldJudge::load(plan.sft.data);
      const auto pairs = evaluation_pairs(plan.sft.data, plan.table_pairs);
      // This seed's rows go to seed-<s>/table3.csv as well, for comparisons paired by seed
      // (scripts/analysis/table1_paired.py).
      std::vector<SeededRow> seed_table3;
      const auto add = [&](const TableRow& r, const std::string& name) {
        add_row(table3, r, name);
        add_row(seed_table3, r, name);
      };
      for (const auto& r : main.table1)
        if (!r.shuffled && r.name != "Base") add(r, r.name == "P4LM" ? "RL on the mix (P4LM)" : r.name);
      for (const std::string reward : {"precision", "appeal", "personalization", "relevance"}) {
        auto rl = plan.rl;
        *rl.out = (seed_dir / ("rl-" + reward)).string();
        std::string weights;
        for (const std::string w : {"precision", "appeal", "personalization", "relevance"})
          weights += (weights.empty() ? "" : ",") + w + (w == reward ? "=1" : "=0");
        *rl.weights = weights;
        log << "== seed " << seed << ": RL on " << reward << " alone (" << *rl.out << ")" << std::endl;
        // result.json, not policy.safetensors: with keep = best the policy is written as the run goes.
        if (!std::filesystem::exists(std::filesystem::path(*rl.out) / "result.json")) (void)run_rl(rl);
        const auto loader =
            rl::PitchPolicyLoader::open(std::filesystem::path(*rl.out) / "policy.safetensors");
        add({"RL on " + reward, false,
             evaluate_pitch_model(loader, plan.sft.data, {pairs}, plan.evaluation, mix, &judge).front()},
            "RL on " + reward);
      }
      write_seeded_table(seed_dir, "table3", seed_table3, 1, true);
    }
    if (seed == seeds.front()) {
      const auto curve = [](const std::vector<nlohmann::json>& rows, const std::string& x_key,
                            const std::string& y_key, const std::string& label, bool from_start) {
        eval::Series s;
        s.label = label;
        double x0 = 0, y0 = 0;
        for (const auto& r : rows) {
          if (!r.contains(y_key) || !r.contains(x_key)) continue;
          if (s.x.empty() && from_start) y0 = r.at(y_key).get<double>();
          s.x.push_back(r.at(x_key).get<double>() - x0);
          s.y.push_back(r.at(y_key).get<double>() - y0);
        }
        std::vector<std::size_t> order(s.x.size());  // a line from left to right
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return s.x[a] < s.x[b]; });
        eval::Series sorted{s.label, {}, {}, s.color, s.dashed};
        for (auto i : order) sorted.x.push_back(s.x[i]), sorted.y.push_back(s.y[i]);
        return sorted;
      };
      if (wanted("warmstart")) {
        warm.push_back(
            curve(rl_eval_rows(*plan.rl.out), "iteration", "eval/reward", "two-stage warm start", false));
        warm.push_back(curve(rl_eval_rows(seed_dir / "single-stage" / "rl"), "iteration", "eval/reward",
                             "single-stage warm start", false));
      }
      if (wanted("overopt")) {
        // KL of the training batch at the evaluation's iteration; the first row (before RL) is at 0.
        auto rows = rl_eval_rows(*plan.rl.out);
        if (!rows.empty()) rows.front()["objective/kl"] = 0.0;
        over.push_back(curve(rows, "objective/kl", "eval/reward", "proxy: reward mix (RM)", true));
        for (const char* g : {"gold/precision", "gold/personalization", "gold/fluency"}) {
          auto s = curve(rows, "objective/kl", g, g, true);
          s.dashed = true;
          over.push_back(std::move(s));
        }
      }
    }
  }

  if (wanted("table1")) {
    std::stable_sort(table1.begin(), table1.end(), [](const SeededRow& a, const SeededRow& b) {
      return table1_rank(a.name) < table1_rank(b.name);
    });
    write_seeded_table(out, "table1", table1, seeds.size(), false, table1_reproduce_notes());
    log << "\nTable 1 (" << seeds.size() << " seed(s), mean ± 95% CI): " << (out / "table1.md").string()
        << '\n'
        << io::read_file(out / "table1.md");
  }
  if (wanted("table3")) {
    write_seeded_table(out, "table3", table3, seeds.size(), true);
    log << "\nTable 3, reward hacking (" << seeds.size() << " seed(s)): " << (out / "table3.md").string()
        << '\n'
        << io::read_file(out / "table3.md");
  }
  if (wanted("warmstart")) {
    eval::write_line_plot(out / "warmstart.svg", warm,
                          {.title = "RL after two-stage and single-stage warm starts (seed " +
                                    std::to_string(seeds.front()) + ")",
                           .x_label = "RL iteration",
                           .y_label = "held-out reward mix"});
    log << "\nwarm-start ablation: " << (out / "warmstart.svg").string() << '\n';
  }
  if (wanted("overopt")) {
    eval::write_line_plot(out / "overopt.svg", over,
                          {.title = "Over-optimisation: change from the warm start against KL (seed " +
                                    std::to_string(seeds.front()) + ")",
                           .x_label = "KL from the warm start (nats per pitch)",
                           .y_label = "change from the warm start",
                           .height = 400 + 18 * static_cast<int>(over.size())});
    log << "over-optimisation: " << (out / "overopt.svg").string() << '\n';
  }
}

}  // namespace p4lm::pipeline
