#pragma once
// `p4lm rewards eval`'s agreement table: the four learned rewards and the gold judge scoring the same
// pitches, compared by Spearman's rank correlation (eval/agreement.hpp) on the teacher's test pitches
// (the data build's sft/test.jsonl) and on any other pitch file, such as samples of the SFT model.
//
//   std::vector<p4lm::pipeline::PitchSet> sets{p4lm::pipeline::teacher_test_pitches("runs/main/data"),
//                                              p4lm::pipeline::read_pitch_set("sft samples", "s.jsonl")};
//   auto t = p4lm::pipeline::reward_agreement({.data = "runs/main/data", .rewards = "runs/main/rewards",
//                                              .encoder = "models/all-minilm-l6-v2"}, sets);
//   std::cout << p4lm::eval::format_agreement(t.rows, {});
//
// The rewards are scored raw (what RL's mix weights), through the same load_reward_mix the RL stage
// uses, so the table describes the very numbers PPO maximises.

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/eval/agreement.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/eval/gold_pitch_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/pipeline/rl_stage.hpp"
#include "p4lm/reward/training.hpp"

namespace p4lm::pipeline {

// Pitches read from one file, with the line each came from (for errors).
struct PitchSet {
  std::string name;
  std::filesystem::path file;
  std::vector<PitchToScore> pitches;
  std::vector<std::size_t> lines;
};

// user_id, movie_id and pitch of every line of a JSONL file (eval::read_pitches: a missing or
// mistyped field, or an empty pitch, is a ParseError naming the file, the line and the field).
inline PitchSet read_pitch_set(std::string name, const std::filesystem::path& file) {
  PitchSet s{std::move(name), file, {}, {}};
  for (auto& l : eval::read_pitches(file)) {
    s.pitches.push_back({l.pitch.user_id, l.pitch.movie_id, std::move(l.pitch.pitch)});
    s.lines.push_back(l.line);
  }
  if (s.pitches.empty()) fail<InvalidArgument>(file.string(), ": no pitch");
  return s;
}

// The teacher's pitches for the test users: the data build's sft/test.jsonl.
inline PitchSet teacher_test_pitches(const std::filesystem::path& data) {
  return read_pitch_set("teacher test", data / "sft" / "test.jsonl");
}

struct AgreementInputs {
  std::filesystem::path data;     // the data build (catalog, profiles, held-out ratings, config.json)
  std::filesystem::path rewards;  // folder of `p4lm rewards train`
  std::filesystem::path encoder;  // the frozen encoder the rewards were trained on
  std::filesystem::path cf;       // CF model of preference relevance (empty: the data build's)
  std::string only;               // rewards to report, comma list (empty: all)
  eval::BootstrapOptions bootstrap;
};

struct AgreementTable {
  std::vector<eval::AgreementRow> rows;
  std::string skipped;  // why there are no rows (a reward not trained), or empty
};

// Every set scored by the reward mix and the gold judge, one agreement row per (set, reward) pair
// that `only` wants. A pitch the judge cannot score (unknown movie or user) is a ParseError naming
// its file and line; a reward file missing from `rewards` gives no rows and says so in `skipped`.
inline AgreementTable reward_agreement(const AgreementInputs& in, std::span<const PitchSet> sets) {
  AgreementTable t;
  for (const char* name : reward::reward_names)
    if (const auto f = in.rewards / (std::string(name) + ".safetensors"); !std::filesystem::exists(f)) {
      t.skipped = f.string() + " does not exist (the table needs all four rewards)";
      return t;
    }
  const auto judge = eval::GoldJudge::load(in.data);
  for (const auto& s : sets)
    for (std::size_t i = 0; i < s.pitches.size(); ++i)
      if (const auto bad = judge.problem({s.pitches[i].user_id, s.pitches[i].movie_id, s.pitches[i].pitch}))
        throw ParseError(s.file, s.lines.at(i), bad->first, bad->second);
  const auto mix =
      load_reward_mix(in.rewards, "", in.encoder, in.data, reward::relevance_cf_path(in.data, in.cf));
  for (const auto& s : sets) {
    std::map<std::string, std::vector<double>> rewards, gold;
    for (std::size_t b = 0; b < s.pitches.size(); b += 64) {
      const auto chunk = std::span(s.pitches).subspan(b, std::min<std::size_t>(64, s.pitches.size() - b));
      for (const auto& [name, v] : mix(chunk).components)
        if (reward::reward_wanted(in.only, name))
          rewards[name].insert(rewards[name].end(), v.begin(), v.end());
      for (const auto& p : chunk)
        for (const auto& [name, v] : eval::gold_metrics(judge.score({p.user_id, p.movie_id, p.pitch})))
          gold[name].push_back(v);
    }
    const auto rows = eval::agreement_rows(s.name, rewards, gold, in.bootstrap);
    t.rows.insert(t.rows.end(), rows.begin(), rows.end());
  }
  return t;
}

}  // namespace p4lm::pipeline
