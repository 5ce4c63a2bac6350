#pragma once
// Held-out evaluation of pitch models: greedy pitches for the same held-out (user, movie) pairs from
// each model, scored by the reward models and by the gold judge, with the shuffled-user control
// (each pitch written from another test user's CF embedding, scored against the real user). Models
// that read the user as text (the prompted base, SFT-Text: text_prompted_model.hpp) get the same
// pairs, prompts holding the profile instead, and the shuffled-profile control. The pipeline's
// Table 1 is one row per (model, control) pair of this evaluation.
//
//   auto pairs = p4lm::pipeline::evaluation_pairs("runs/main/data", 32);
//   auto loader = p4lm::rl::PitchPolicyLoader::open("runs/main/sft");
//   auto reward = p4lm::pipeline::load_reward_mix("runs/main/rewards", "", encoder, data, loader);
//   auto judge = p4lm::eval::GoldJudge::load("runs/main/data");
//   auto sft = p4lm::pipeline::evaluate_pitch_model(loader, data, {pairs}, {}, reward, &judge).front();
//   // sft.means["rewards/appeal"], sft.means["gold/precision"], ...; sft.rows: one JSON per pitch
//   auto base = p4lm::pipeline::TextPromptedModel::base("smollm2", {}, prompt_options);
//   auto b = p4lm::pipeline::evaluate_text_model(base, data, {pairs}, {}, reward, &judge).front();
//
// Greedy decoding (temperature 0) makes a row a function of the model alone: the same model gives
// the same table. With EvaluationSettings::no_repeat_ngram_size every row's decoder refuses to repeat
// a token n-gram of the pitch (`p4lm run --eval-no-repeat-ngram-size`; off in the main job, see
// docs/rl.md). Pitches are written in batches by the batched KV-cache decoder.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/pipeline/rl_stage.hpp"
#include "p4lm/pipeline/text_prompted_model.hpp"
#include "p4lm/rl/greedy_generate.hpp"
#include "p4lm/rl/pitch_policy.hpp"

namespace p4lm::pipeline {

// A held-out pair, and whose CF embedding (or, for a text-prompted model, whose profile) the model
// reads for it: the user's own, or another test user's in the shuffled control.
struct EvaluationPair {
  std::int64_t user_id = 0, movie_id = 0, embedding_user_id = 0;
};

// The held-out users an evaluation reads: validation (choosing settings) or test (the tables, read once).
enum class HeldoutSplit { val, test };

inline HeldoutSplit parse_heldout_split(std::string_view s) {
  if (s == "val") return HeldoutSplit::val;
  if (s == "test") return HeldoutSplit::test;
  fail<UsageError>("--split '", s, "': expected val or test");
}

// The first `n` held-out pairs of distinct users (heldout/<split>.jsonl order), each reading its
// own user's embedding; with `shuffled`, pair i reads the user of pair (i + n/2) mod n instead: a
// fixed derangement, so the control needs no seed and is the same for every model.
inline std::vector<EvaluationPair> evaluation_pairs(const std::filesystem::path& data, std::size_t n,
                                                    bool shuffled = false,
                                                    HeldoutSplit split = HeldoutSplit::test) {
  const auto file = data / "heldout" / (split == HeldoutSplit::val ? "val.jsonl" : "test.jsonl");
  const auto heldout = data::read_records<data::HeldoutPair>(file);
  std::vector<EvaluationPair> pairs;
  std::set<std::int64_t> users;
  for (const auto& h : heldout) {
    if (pairs.size() >= n) break;
    if (users.insert(h.user_id).second) pairs.push_back({h.user_id, h.movie_id, h.user_id});
  }
  if (pairs.empty()) fail<InvalidArgument>(file.string(), ": no held-out pair");
  if (shuffled) {
    if (pairs.size() < 2)
      fail<InvalidArgument>("evaluation: the shuffled-user control needs at least 2 held-out users");
    const std::size_t shift = std::max<std::size_t>(1, pairs.size() / 2);
    for (std::size_t i = 0; i < pairs.size(); ++i)
      pairs[i].embedding_user_id = pairs[(i + shift) % pairs.size()].user_id;
  }
  return pairs;
}

struct EvaluationSettings {
  std::size_t max_new_tokens = 64;  // pitch budget in tokens (EOS included)
  std::size_t batch = 16;           // sequences decoded together
  // > 0: a pitch never repeats a token n-gram of its own (SamplingOptions::no_repeat_ngram_size).
  std::size_t no_repeat_ngram_size = 0;

  // The greedy decoding these settings describe, for a model whose EOS is `eos`.
  SamplingOptions decoding(std::int32_t eos) const {
    return {.max_new_tokens = max_new_tokens,
            .temperature = 0,
            .eos = eos,
            .no_repeat_ngram_size = no_repeat_ngram_size};
  }
};

struct ModelEvaluation {
  std::vector<nlohmann::json> rows;     // one per pair: ids, pitch, every score
  std::map<std::string, double> means;  // the rows' means of every score
};

// Scores of decoded pitches (tokens[i] for pairs[i], ending with EOS when it came) by `reward`
// (against each pair's real user) and by `judge` (null: no gold columns). Scores per pitch:
// rewards/<name>, reward (the mix), gold/... (eval::gold_metrics), ended (1 when EOS came within the
// budget), tokens.
inline ModelEvaluation score_pitches(std::span<const EvaluationPair> pairs,
                                     const std::vector<std::vector<std::int32_t>>& tokens,
                                     const train::TextCodec& codec, const PitchReward& reward,
                                     const eval::GoldJudge* judge) {
  std::vector<PitchToScore> pitches;
  std::vector<eval::PitchToJudge> judged;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    auto t = tokens.at(i);
    const bool ended = !t.empty() && t.back() == codec.eos;
    if (ended) t.pop_back();
    pitches.push_back({pairs[i].user_id, pairs[i].movie_id, detail::SampleReward::decode(codec, t), ended});
    judged.push_back({pairs[i].user_id, pairs[i].movie_id, pitches.back().pitch});
  }
  const auto scores = reward ? reward(pitches) : PitchRewardScores{};
  const auto gold = judge ? judge->score(judged) : std::vector<eval::GoldScores>{};
  ModelEvaluation e;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    nlohmann::json row{{"user_id", pairs[i].user_id},
                       {"movie_id", pairs[i].movie_id},
                       {"embedding_user_id", pairs[i].embedding_user_id},
                       {"pitch", pitches[i].pitch},
                       {"ended", pitches[i].ended ? 1.0 : 0.0},
                       {"tokens", static_cast<double>(tokens[i].size())}};
    if (reward) {
      row["reward"] = scores.total.at(i);
      for (const auto& [name, v] : scores.components) row["rewards/" + name] = v.at(i);
    }
    if (judge)
      for (const auto& [name, v] : eval::gold_metrics(gold[i])) row[name] = v;
    for (const auto& [k, v] : row.items())
      if (v.is_number_float()) e.means[k] += v.template get<double>() / double(pairs.size());
    e.rows.push_back(std::move(row));
  }
  return e;
}

// Pitches of a loaded pitch policy for `pairs`, scored by score_pitches.
template <class Policy>
ModelEvaluation evaluate_pitch_policy(Policy& policy, const rl::PitchPolicyLoader& loader,
                                      const train::PitchSources& sources,
                                      std::span<const EvaluationPair> pairs, const EvaluationSettings& s,
                                      const PitchReward& reward, const eval::GoldJudge* judge) {
  rl::PitchPrompter prompter(loader, sources, policy.prefix().keys());
  std::vector<rl::Prompt> prompts;
  for (const auto& p : pairs) {
    // The prompt of the embedding's user: the movie's text is the same, the prefix reads that user.
    try {
      prompts.push_back(prompter.prompt(p.embedding_user_id, p.movie_id));
    } catch (const InvalidArgument& e) {
      fail<InvalidArgument>("evaluation: ", e.what(), " (", loader.cf_path().string(), ")");
    }
  }
  const auto g = rl::greedy_generate(policy, prompts, s.decoding(loader.codec().eos), s.batch);
  return score_pitches(pairs, g.tokens, loader.codec(), reward, judge);
}

// A text-prompted model (the prompted base, SFT-Text) on each set of pairs: pair i's prompt holds the
// profile of pairs[i].embedding_user_id (another user's in the shuffled-profile control) and its
// movie; scored against the real user like every other row.
inline std::vector<ModelEvaluation> evaluate_text_model(
    TextPromptedModel& model, const std::filesystem::path& data,
    const std::vector<std::vector<EvaluationPair>>& pair_sets, const EvaluationSettings& s,
    const PitchReward& reward, const eval::GoldJudge* judge) {
  const train::PitchSources sources(data);
  std::vector<ModelEvaluation> out;
  for (const auto& pairs : pair_sets) {
    std::vector<std::vector<std::int32_t>> prompts;
    for (const auto& p : pairs) {
      auto r = sources.request(p.user_id, p.movie_id);
      r.profile = sources.request(p.embedding_user_id, p.movie_id).profile;
      prompts.push_back(model.prompt(r));
    }
    const auto g = model.greedy(prompts, s.decoding(model.codec().eos), s.batch);
    out.push_back(score_pitches(pairs, g.tokens, model.codec(), reward, judge));
  }
  return out;
}

// The model `loader` opened, loaded once, evaluated on each set of pairs (e.g. own and shuffled users).
inline std::vector<ModelEvaluation> evaluate_pitch_model(
    const rl::PitchPolicyLoader& loader, const std::filesystem::path& data,
    const std::vector<std::vector<EvaluationPair>>& pair_sets, const EvaluationSettings& s,
    const PitchReward& reward, const eval::GoldJudge* judge) {
  const train::PitchSources sources(data);
  return loader.with_policy([&](auto policy) {
    std::vector<ModelEvaluation> out;
    for (const auto& pairs : pair_sets)
      out.push_back(evaluate_pitch_policy(policy, loader, sources, pairs, s, reward, judge));
    return out;
  });
}

// The pitch model in `model` (an SFT run folder, an RL policy file) on each set of pairs, through
// evaluate_pitch_model or evaluate_text_model as the file's recorded conditioning says.
inline std::vector<ModelEvaluation> evaluate_model_file(
    const std::filesystem::path& model, const std::filesystem::path& data,
    const std::vector<std::vector<EvaluationPair>>& pair_sets, const EvaluationSettings& s,
    const PitchReward& reward, const eval::GoldJudge* judge) {
  if (pitch_model_conditioning(model) == train::Conditioning::text) {
    auto m = TextPromptedModel::open(model);
    return evaluate_text_model(m, data, pair_sets, s, reward, judge);
  }
  return evaluate_pitch_model(rl::PitchPolicyLoader::open(model), data, pair_sets, s, reward, judge);
}

// ---- one model on held-out pairs (`p4lm evaluate`) ----

// Greedy pitches of one pitch model for the first `pairs` held-out pairs of distinct users, scored as
// the RL stage's validation scores them: each reward model's raw output, the mix (standardised by a
// normalization.json the RL stage wrote, else the raw weighted sum), the gold judge, whether the pitch
// ended and its tokens. On --split val it is what a setting is chosen by; on --split test with the
// run's Table 1 pairs it gives that model's Table 1 row.
struct EvaluateConfig {
  Param<std::string> model{"runs/main/sft", "pitch model: an SFT run folder or an RL policy file"};
  Param<std::string> data{"runs/main/data", "the run's data build (catalog, profiles, heldout/)"};
  Param<std::string> rewards{"runs/main/rewards", "reward models (p4lm rewards train --out)"};
  Param<std::string> normalization{
      "", "the RL stage's normalization.json: standardise the mix by it (empty: raw)"};
  Param<std::string> weights{"precision=1,appeal=1,personalization=1,relevance=1", "reward mix weights"};
  Param<std::string> encoder{
      "", "the reward models' sentence encoder (empty: all-minilm-l6-v2 in the model cache)"};
  Param<std::string> cf{
      "", "CF model preference relevance reads (empty: the pitch model's, else the data build's)"};
  Param<std::string> split{"val", "held-out users: val (choosing settings) or test"};
  Param<long> pairs{32, "held-out pairs of distinct users", at_least(1)};
  Param<long> max_new_tokens{128, "pitch budget in tokens, EOS included", between(1, 1e6)};
  Param<long> no_repeat_ngram_size{0, "never repeat a token n-gram of the pitch (0: off)", between(0, 1e6)};
  Param<bool> shuffled{false, "write each pitch from another held-out user's CF embedding (the control)"};
  Param<std::string> out{"", "JSONL of every pitch and its scores (empty: none)"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::EvaluateConfig, model, data, rewards, normalization, weights, encoder,
                        cf, split, pairs, max_new_tokens, no_repeat_ngram_size, shuffled, out);

namespace p4lm::pipeline {

inline ModelEvaluation evaluate_heldout(const EvaluateConfig& c) {
  const std::filesystem::path data(*c.data), model(*c.model);
  std::filesystem::path encoder(*c.encoder), cf(*c.cf);
  if (encoder.empty()) {
    const auto minilm = minilm_path();
    if (!minilm)
      fail<InvalidArgument>("--encoder: all-MiniLM-L6-v2 is not in the model cache ",
                            model_cache_dir().string(), " (run scripts/fetch-models.sh, or give --encoder)");
    encoder = *minilm;
  }
  const auto pairs =
      evaluation_pairs(data, static_cast<std::size_t>(*c.pairs), *c.shuffled, parse_heldout_split(*c.split));
  if (cf.empty() && pitch_model_conditioning(model) == train::Conditioning::cf)
    cf = rl::PitchPolicyLoader::open(model).cf_path();
  if (cf.empty()) {
    const auto config = data / "config.json";
    cf = nlohmann::json::parse(io::read_file(config)).value("cf", "");
    if (cf.empty())
      fail<InvalidArgument>(config.string(),
                            ": field cf is empty, and preference relevance needs a CF model (--cf)");
  }
  auto reward = load_reward_mix(*c.rewards, *c.weights, encoder, data, cf);
  if (!c.normalization->empty()) {
    const std::filesystem::path file(*c.normalization);
    std::map<std::string, reward::ComponentNormalization> stats;
    try {
      stats = detail::statistics_from_json(nlohmann::json::parse(io::read_file(file)));
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(file, 0, "components", e.what());
    }
    reward = standardized_reward(std::move(reward), component_weights(*c.weights), std::move(stats));
  }
  const EvaluationSettings s{.max_new_tokens = static_cast<std::size_t>(*c.max_new_tokens),
                             .no_repeat_ngram_size = static_cast<std::size_t>(*c.no_repeat_ngram_size)};
  const auto judge = eval::GoldJudge::load(data);
  auto e = evaluate_model_file(model, data, {pairs}, s, reward, &judge).front();
  if (!c.out->empty())
    io::write_jsonl_with(*c.out, [&](auto&& emit) {
      for (const auto& row : e.rows) emit(row);
    });
  return e;
}

// ---- Table 1 ----

// One row of the table: a model, read with its users' embeddings or with shuffled ones.
struct TableRow {
  std::string name;  // "Base", "SFT-Text", "SFT", "P4LM", ...
  bool shuffled = false;
  ModelEvaluation evaluation;
};

// The columns: what a reader compares between rows (reward-model scores, the gold judge, fluency).
struct TableColumn {
  std::string title, key;
};
inline const std::vector<TableColumn>& table1_columns() {
  static const std::vector<TableColumn> c{{"precision (RM)", "rewards/precision"},
                                          {"personalization (RM)", "rewards/personalization"},
                                          {"appeal (RM)", "rewards/appeal"},
                                          {"preference relevance (RM)", "rewards/preference_relevance"},
                                          {"gold precision", "gold/precision"},
                                          {"gold personalization", "gold/personalization"},
                                          {"non-word share", "gold/fluency/unknown_share"},
                                          {"words", "gold/fluency/words"},
                                          {"ended", "ended"}};
  return c;
}

inline std::string format_cell(double v) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(std::abs(v) >= 10 ? 1 : 3);
  s << v;
  return s.str();
}

// `notes` (markdown, may be empty) follows the table: what each row is and where the missing ones come from.
inline std::string table_markdown(std::span<const TableRow> rows, const std::string& notes = {}) {
  std::ostringstream md;
  md << "| model | users |";
  for (const auto& c : table1_columns()) md << ' ' << c.title << " |";
  md << "\n| --- | --- |";
  for (std::size_t i = 0; i < table1_columns().size(); ++i) md << " --- |";
  md << '\n';
  for (const auto& r : rows) {
    md << "| " << r.name << " | " << (r.shuffled ? "shuffled" : "own") << " |";
    for (const auto& c : table1_columns()) {
      const auto it = r.evaluation.means.find(c.key);
      md << ' ' << (it == r.evaluation.means.end() ? "-" : format_cell(it->second)) << " |";
    }
    md << '\n';
  }
  if (!notes.empty()) md << '\n' << notes << (notes.ends_with('\n') ? "" : "\n");
  return md.str();
}

inline std::string table_csv(std::span<const TableRow> rows) {
  std::ostringstream csv;
  csv << "model,users";
  for (const auto& c : table1_columns()) csv << ',' << c.key;
  csv << '\n';
  csv.precision(9);
  for (const auto& r : rows) {
    csv << r.name << ',' << (r.shuffled ? "shuffled" : "own");
    for (const auto& c : table1_columns()) {
      csv << ',';
      if (const auto it = r.evaluation.means.find(c.key); it != r.evaluation.means.end()) csv << it->second;
    }
    csv << '\n';
  }
  return csv.str();
}

// <stem>.md (the table, then `notes`), <stem>.csv and <stem>_pitches.jsonl (every row's pitches,
// tagged with model and users).
inline void write_table(const std::filesystem::path& dir, const std::string& stem,
                        std::span<const TableRow> rows, const std::string& notes = {}) {
  io::write_file_atomically(dir / (stem + ".md"), table_markdown(rows, notes));
  io::write_file_atomically(dir / (stem + ".csv"), table_csv(rows));
  io::write_jsonl_with(dir / (stem + "_pitches.jsonl"), [&](auto&& emit) {
    for (const auto& r : rows)
      for (auto row : r.evaluation.rows) {
        row["model"] = r.name;
        row["users"] = r.shuffled ? "shuffled" : "own";
        emit(row);
      }
  });
}

}  // namespace p4lm::pipeline
