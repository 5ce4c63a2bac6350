#pragma once
// The RL stage: the warm-started pitch model (an SFT run) trained by PPO (or the KL-regularised policy
// gradient) against a pitch reward, with the frozen warm start as the KL reference.
//
//   p4lm::pipeline::RlConfig c;
//   *c.sft = "runs/main/sft"; *c.data = "runs/main/data"; *c.out = "runs/main/rl";
//   auto result = p4lm::pipeline::run_rl(c, reward);   // reward: a PitchReward (below)
//
// Prompts: each iteration draws batch_size (PPO) or batch_size / rloo_k (pg) (train user, movie) pairs
// from the data stage's train-split users and the catalog (both with CF embeddings), from its own
// Philox stream, so a resumed run draws what the uninterrupted one would have.
// Every eval_every iterations (and before the first), the policy writes one greedy pitch for each
// of the first eval_pairs held-out validation pairs (heldout/val.jsonl): the same users and movies
// each time. Validation, not test: the curve is read while the run goes on, and the test users are
// kept for the tables written once at the end. They are scored by the reward (eval/rewards/...) and
// by the gold judge (gold/<dimension>: logged, never used to decide anything), and appended to
// samples.jsonl / samples.md.
// Choosing the iteration by the reward models on those validation pairs: `keep = best` makes
// policy.safetensors the policy of the evaluation with the highest eval/reward (iteration 0, the warm
// start, included), and `patience = n` stops the run after n evaluations without a higher one. Long runs
// otherwise end in pitches that hack one component (docs/rl.md); the gold judge never decides.
//
// Files in `out`: metrics.jsonl and metrics.csv (one row per iteration: rl/'s TRL names plus
// rewards/<component>/mean, eval/... and gold/... on evaluation iterations), curves.svg (reward
// components, KL, gold scores), samples.jsonl, samples.md, state.safetensors (the shared Trainer's
// checkpoint, every save_every iterations and at the end), steps.jsonl and steps.csv (the Trainer's
// record at each iteration's last AdamW step), policy.safetensors (the trained pitch model, loadable by
// PitchWriter), result.json. A folder holding state.safetensors resumes from it. PPO and the policy gradient
// run as objectives of train/trainer.hpp's Trainer (rl/rl_trainer.hpp).
// Under mpirun every rank samples and trains its share of each iteration (docs/distributed.md); rank 0
// alone locks `out`, evaluates and writes the files, and the rows' reward components are the means
// over every rank's samples.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/eval/catalog_file.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/eval/svg_plot.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/reward/appeal.hpp"
#include "p4lm/reward/personalization.hpp"
#include "p4lm/reward/precision.hpp"
#include "p4lm/reward/preference_relevance.hpp"
#include "p4lm/reward/reward_mix.hpp"
#include "p4lm/reward/text_features.hpp"
#include "p4lm/rl/greedy_generate.hpp"
#include "p4lm/rl/pitch_policy.hpp"
#include "p4lm/rl/policy_gradient.hpp"
#include "p4lm/rl/ppo_trainer.hpp"
#include "p4lm/train/checkpointing.hpp"

namespace p4lm::pipeline {

// ---- the reward the stage trains against ----

// A finished pitch as the reward sees it (decoded text, no EOS).
struct PitchToScore {
  std::int64_t user_id = 0, movie_id = 0;
  std::string pitch;
  bool ended = false;  // emitted EOS within the token budget
};
struct PitchRewardScores {
  std::vector<double> total;                              // what the policy maximises, per pitch
  std::map<std::string, std::vector<double>> components;  // logged as rewards/<name>/mean
};
// reward/'s RewardMix, or any scorer of a batch of pitches.
using PitchReward = std::function<PitchRewardScores(std::span<const PitchToScore>)>;

// "precision=1,appeal=0.5" -> {precision: 1, appeal: 0.5}; InvalidArgument naming the bad entry.
inline std::map<std::string, double> parse_reward_weights(const std::string& s) {
  std::map<std::string, double> w;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    double v = 0;
    try {
      if (eq == std::string::npos || eq == 0) throw std::invalid_argument("no '='");
      std::size_t used = 0;
      v = std::stod(item.substr(eq + 1), &used);
      if (used != item.size() - eq - 1) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      fail<InvalidArgument>("--weights: '", item, "' is not name=number");
    }
    if (!(v >= 0) || !std::isfinite(v)) fail<InvalidArgument>("--weights: ", item, ": a weight must be >= 0");
    w[item.substr(0, eq)] = v;
  }
  return w;
}

// --weights with the mix's component names ("relevance" names preference_relevance).
inline std::map<std::string, double> component_weights(const std::string& weights) {
  auto w = parse_reward_weights(weights);
  if (const auto r = w.find("relevance"); r != w.end()) {
    w["preference_relevance"] = r->second;
    w.erase(r);
  }
  return w;
}

// Mean and population standard deviation of each component of a reward over `pitches` (the warm
// start's samples when the stage standardises, RlConfig::normalize). A component constant over them
// cannot be standardised: InvalidArgument naming it.
inline std::map<std::string, reward::ComponentNormalization> fit_component_statistics(
    const PitchReward& reward, std::span<const PitchToScore> pitches) {
  if (pitches.empty()) fail<InvalidArgument>("rl: no samples to fix the reward statistics from");
  std::map<std::string, reward::ComponentNormalization> stats;
  for (const auto& [name, v] : reward(pitches).components) {
    const auto [mean, sd] = reward::mean_std(v);
    if (!std::isfinite(mean) || !(sd > 1e-12))
      fail<InvalidArgument>("rl: reward component '", name, "' is ", mean, " on all ", v.size(),
                            " warm-start samples (std ", sd,
                            "); it cannot be standardised (--normalize none)");
    stats[name] = {reward::Normalization::standardize, mean, sd, true};
  }
  return stats;
}

// `raw` with its total replaced by Σ_c w_c (x_c - μ_c) / σ_c over its components (weights by component
// name, 1 for a component they leave out; an unknown name is an error). The components stay raw, so
// rewards/<name>/mean keep their units.
inline PitchReward standardized_reward(PitchReward raw, const std::map<std::string, double>& weights,
                                       std::map<std::string, reward::ComponentNormalization> stats) {
  for (const auto& [name, w] : weights)
    if (!stats.contains(name)) {
      std::string known;
      for (const auto& [n, st] : stats) known += (known.empty() ? "" : ", ") + n;
      fail<InvalidArgument>("--weights: unknown reward '", name, "' (this reward's components: ", known, ")");
    }
  return [raw = std::move(raw), weights, stats = std::move(stats)](std::span<const PitchToScore> batch) {
    auto s = raw(batch);
    s.total.assign(batch.size(), 0.0);
    for (const auto& [name, v] : s.components) {
      const auto st = stats.find(name);
      if (st == stats.end() || v.size() != batch.size())
        fail<InvalidArgument>("rl: reward component '", name, "' has no statistics or ", v.size(),
                              " scores for ", batch.size(), " pitches");
      const auto w = weights.find(name);
      const double eta = w == weights.end() ? 1.0 : w->second;
      for (std::size_t i = 0; i < v.size(); ++i)
        s.total[i] += eta * (v[i] - st->second.mean) / st->second.std;
    }
    return s;
  };
}

// The P4LM reward mix (precision, appeal, personalization, preference relevance) from the folder
// `p4lm rewards train` wrote, weighted by `weights` ("precision=1,appeal=0.5,..."; "relevance" names
// preference_relevance; a reward left out weighs 1), as a PitchReward. Components are used raw
// (Normalization::none): the weights set their balance. `cf_file` is the run's CF model, which preference
// relevance reads (any pitch model is scored with it, CF-conditioned or not).
inline PitchReward load_reward_mix(const std::filesystem::path& rewards, const std::string& weights,
                                   const std::filesystem::path& encoder, const std::filesystem::path& data,
                                   const std::filesystem::path& cf_file) {
  auto w = component_weights(weights);
  return train::with_adapter_dim(cf::embeddings_dim(cf_file), [&](auto d) -> PitchReward {
    constexpr int Dim = decltype(d)::value;
    using Mix = reward::RewardMix<reward::Precision<>, reward::Appeal<>, reward::Personalization<>,
                                  reward::PreferenceRelevance<backend::cpu, Dim>>;
    std::vector<double> eta;
    for (const auto name : Mix::names()) {
      const auto it = w.find(std::string(name));
      eta.push_back(it == w.end() ? 1.0 : it->second);
      if (it != w.end()) w.erase(it);
    }
    if (!w.empty())
      fail<InvalidArgument>("--weights: unknown reward '", w.begin()->first,
                            "' (precision, appeal, personalization, relevance)");
    for (const char* f : {"precision", "appeal", "personalization", "preference_relevance"})
      if (!std::filesystem::exists(rewards / (std::string(f) + ".safetensors")))
        fail<InvalidArgument>("--rewards: ", (rewards / (std::string(f) + ".safetensors")).string(),
                              " does not exist (run p4lm rewards train)");
    auto f = std::make_shared<reward::TextFeatures>(encoder);
    auto mix =
        std::make_shared<Mix>(reward::Precision<>::load(rewards / "precision.safetensors", f),
                              reward::Appeal<>::load(rewards / "appeal.safetensors", f),
                              reward::Personalization<>::load(rewards / "personalization.safetensors", f),
                              reward::PreferenceRelevance<backend::cpu, Dim>::load(
                                  rewards / "preference_relevance.safetensors", f));
    mix->set_weights(eta);
    auto catalog = std::make_shared<const data::Catalog>(eval::read_catalog(data / "catalog.jsonl"));
    auto sources = std::make_shared<const train::PitchSources>(data);
    auto cf = std::make_shared<const cf::Embeddings<Dim>>(cf::load_embeddings<Dim>(cf_file));
    auto rows = std::make_shared<const train::CfRows>(*cf);
    return [=](std::span<const PitchToScore> batch) {
      std::vector<reward::RolloutData> owned;
      owned.reserve(batch.size());
      for (const auto& p : batch) {
        reward::RolloutData r;
        r.pitch = p.pitch, r.user_id = p.user_id, r.movie_id = p.movie_id;
        r.premise = data::premise_text(catalog->by_movie_id(p.movie_id));
        r.profile = sources->request(p.user_id, p.movie_id).profile;
        const auto e = cf->user(rows->user_row(p.user_id));
        r.user_embedding.assign(e.begin(), e.end());
        owned.push_back(std::move(r));
      }
      std::vector<reward::Rollout> views;
      for (const auto& r : owned) views.push_back(r.view());
      auto s = mix->evaluate(views);
      PitchRewardScores out;
      out.total = std::move(s.total);
      for (std::size_t c = 0; c < Mix::size; ++c) out.components[std::string(Mix::names()[c])] = s.raw[c];
      return out;
    };
  });
}

// The same with the CF model a CF-conditioned pitch model (its loader) reads.
inline PitchReward load_reward_mix(const std::filesystem::path& rewards, const std::string& weights,
                                   const std::filesystem::path& encoder, const std::filesystem::path& data,
                                   const rl::PitchPolicyLoader& loader) {
  return load_reward_mix(rewards, weights, encoder, data, loader.cf_path());
}

// ---- configuration ----

// What a sampled pitch may be and what it loses outside the reward: its length budget, and the
// penalties for never ending, for ending under the floor, and for repeating its own n-grams. A group
// of RlConfig (core/config.hpp): its fields are `p4lm rl` flags like the others.
struct RlResponseConfig {
  Param<long> response_length{64, "new tokens per sample", between(1, 1e6)};
  Param<double> missing_eos_penalty{1.0, "subtracted from the score of a pitch that never ends", at_least(0)};
  Param<long> min_response_length{
      0, "length floor in tokens: a pitch that ends sooner loses --short-response-penalty", between(0, 1e6)};
  Param<double> short_response_penalty{0, "subtracted from the score of a pitch under --min-response-length",
                                       at_least(0)};
  Param<long> repeated_ngram_size{4, "n of --repeated-ngram-penalty (token n-grams)", between(1, 1e6)};
  Param<double> repeated_ngram_penalty{
      0, "times the share of a pitch's token n-grams said before in it, subtracted from its score",
      at_least(0)};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::RlResponseConfig, response_length, missing_eos_penalty,
                        min_response_length, short_response_penalty, repeated_ngram_size,
                        repeated_ngram_penalty);

namespace p4lm::pipeline {

struct RlConfig {
  Param<std::string> sft{"runs/main/sft", "SFT run folder (its model.safetensors) or a pitch model file"};
  Param<std::string> data{"runs/main/data",
                          "folder of p4lm data build (catalog, profiles, heldout/val.jsonl)"};
  Param<std::string> rewards{"runs/main/rewards", "folder of p4lm rewards train (<reward>.safetensors)"};
  Param<std::string> encoder{"models/all-minilm-l6-v2",
                             "sentence-transformers folder the rewards were trained on"};
  Param<std::string> out{"runs/main/rl", "output folder (resumed when it holds state.safetensors)"};
  Param<std::string> weights{"precision=1,appeal=1,personalization=1,relevance=1",
                             "reward mix weights, name=value,..."};
  Param<std::string> algo{"ppo", "ppo (clipped PPO, value head, GAE) or pg (KL-regularised RLOO)"};
  Param<long> iterations{100, "RL iterations", between(1, 1e9)};
  Param<long> batch_size{16, "samples per iteration", between(1, 1e6)};
  Param<long> mini_batch_size{4, "samples per optimizer step (pg: per forward/backward)", between(1, 1e6)};
  Param<long> ppo_epochs{4, "passes over each batch (ppo)", between(1, 1000)};
  Param<long> rloo_k{4, "samples per prompt (pg)", between(2, 1000)};
  Param<double> learning_rate{1.41e-5, "AdamW learning rate", between(1e-12, 1)};
  Param<double> max_grad_norm{1.0, "global gradient-norm clip (0: none)", at_least(0)};
  Param<double> init_kl_coef{0.2, "initial KL coefficient beta", at_least(0)};
  Param<bool> adaptive_kl{true, "steer beta to the target KL (AdaptiveKL); false: fixed beta"};
  Param<double> target{6, "AdaptiveKL: target per-sample KL in nats", between(1e-9, 1e9)};
  Param<double> horizon{10000, "AdaptiveKL horizon in samples", between(1, 1e12)};
  Param<std::string> kl_penalty{"k1", "per-token KL estimator: k1, k2 or k3"};
  Param<double> cliprange{0.2, "PPO ratio clip", between(0, 10)};
  Param<double> cliprange_value{0.2, "value clip", between(0, 1e6)};
  Param<double> vf_coef{0.1, "value loss weight", at_least(0)};
  Param<double> gamma{1.0, "discount", between(0, 1)};
  Param<double> lam{0.95, "GAE lambda", between(0, 1)};
  RlResponseConfig response;  // response length and the penalties outside the reward
  Param<std::string> normalize{"none",
                               "reward components: none (raw) or standardize (mean and std fixed from the "
                               "warm start's samples, then weighted)"};
  Param<long> normalize_samples{64, "standardize: warm-start samples the statistics come from",
                                between(2, 1e6)};
  Param<long> eval_every{10, "iterations between evaluations (gold judge, samples)", between(1, 1e9)};
  Param<long> eval_pairs{8, "validation (user, movie) pairs evaluated and shown", between(0, 1e6)};
  Param<long> eval_no_repeat_ngram_size{
      0, "the evaluation's greedy pitches never repeat a token n-gram of their own (0: plain greedy)",
      between(0, 1e6)};
  Param<bool> gold{true, "score the evaluation pitches with the gold judge (needs a full data build)"};
  Param<std::string> keep{"last",
                          "policy.safetensors: last (the policy at the end) or best (the evaluation with the "
                          "highest eval/reward on the validation pairs)"};
  Param<long> patience{0, "stop after this many evaluations without a higher eval/reward (0: never)",
                       between(0, 1e9)};
  Param<long> save_every{10, "iterations between checkpoints", between(1, 1e9)};
  Param<long> seed{1, "sampling and prompt seed"};
  Param<bool> progress{true, "progress on stderr"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::RlConfig, sft, data, rewards, encoder, out, weights, algo, iterations,
                        batch_size, mini_batch_size, ppo_epochs, rloo_k, learning_rate, max_grad_norm,
                        init_kl_coef, adaptive_kl, target, horizon, kl_penalty, cliprange, cliprange_value,
                        vf_coef, gamma, lam, response, normalize, normalize_samples, eval_every, eval_pairs,
                        eval_no_repeat_ngram_size, gold, keep, patience, save_every, seed, progress);

namespace p4lm::pipeline {

struct RlResult {
  std::size_t iterations = 0;
  double seconds = 0;
  nlohmann::json first_eval, last_eval;  // the evaluation rows before and after training
  nlohmann::json best_eval;              // the evaluation row with the highest eval/reward
  std::string kept = "last";             // which policy policy.safetensors holds: last or best
  bool stopped_early = false;            // patience ran out before the last iteration
  // No wall time: a resumed run writes the same bytes as an uninterrupted one.
  nlohmann::json json() const {
    return {{"iterations", iterations},
            {"first_eval", first_eval},
            {"last_eval", last_eval},
            {"best_eval", best_eval},
            {"kept", kept},
            {"stopped_early", stopped_early}};
  }
};

namespace detail {

inline constexpr std::uint64_t rl_prompt_stream = 0x5e1ec7ULL;
inline constexpr std::uint64_t rl_statistics_stream = 0x57a75ULL;

// The reward statistics a standardised run's checkpoint holds (null: no checkpoint, or none in it).
inline nlohmann::json checkpoint_statistics(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file)) return nullptr;
  const auto st = io::SafetensorsFile::open(file);
  const auto it = st.metadata().find(train::trainer_metadata_key);
  if (it == st.metadata().end()) return nullptr;
  const auto options = nlohmann::json::parse(it->second).value("options", nlohmann::json::object());
  return options.contains("normalization") ? options.at("normalization") : nlohmann::json();
}

// The statistics of normalization.json's form as the reward mix takes them.
inline std::map<std::string, reward::ComponentNormalization> statistics_from_json(const nlohmann::json& j) {
  std::map<std::string, reward::ComponentNormalization> stats;
  for (const auto& [name, st] : j.at("components").items())
    stats[name] = {reward::Normalization::standardize, st.at("mean").get<double>(),
                   st.at("std").get<double>(), true};
  return stats;
}

// --keep and --patience read the evaluations: they need some.
template <class Error = InvalidArgument>
void check_selection(const RlConfig& c) {
  if (*c.keep != "last" && *c.keep != "best") fail<Error>("--keep: '", *c.keep, "', expected last or best");
  if ((*c.keep == "best" || *c.patience > 0) && *c.eval_pairs == 0)
    fail<Error>(*c.keep == "best" ? "--keep best" : "--patience",
                " chooses by the evaluations: it needs --eval-pairs > 0");
}

// The PPO-side reward: decodes each sample, asks the PitchReward, keeps the components' means.
struct SampleReward {
  const rl::PitchKeys* keys;
  const train::TextCodec* codec;
  PitchReward reward;
  std::shared_ptr<std::map<std::string, double>> last;  // rewards/<name>/mean of the last call

  std::vector<double> operator()(std::span<const rl::Sample> batch) {
    std::vector<PitchToScore> pitches;
    for (const auto& s : batch) {
      const auto& p = keys->at(s.key);
      auto ids = std::vector<std::int32_t>(s.response.begin(), s.response.end());
      if (!ids.empty() && ids.back() == codec->eos) ids.pop_back();
      pitches.push_back({p.user_id, p.movie_id, decode(*codec, ids), s.ended});
    }
    auto scores = reward(pitches);
    last->clear();
    for (const auto& [name, v] : scores.components) {
      double sum = 0;
      for (double x : v) sum += x;
      (*last)["rewards/" + name + "/mean"] = v.empty() ? 0 : sum / double(v.size());
    }
    return std::move(scores.total);
  }
  static std::string decode(const train::TextCodec& codec, std::span<const std::int32_t> ids) {
    std::string text = codec.decode(ids);
    const auto first = text.find_first_not_of(' ');
    return first == std::string::npos ? std::string() : text.substr(first);
  }
};

// Decoded pitches of generated continuations (EOS stripped, `ended` set) for prompts[b].
inline std::vector<PitchToScore> pitches_of(const rl::PitchKeys& keys, const train::TextCodec& codec,
                                            std::span<const rl::Prompt> prompts, const Generation& g) {
  std::vector<PitchToScore> pitches;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    auto t = g.tokens[b];
    const bool ended = !t.empty() && t.back() == codec.eos;
    if (ended) t.pop_back();
    const auto& pair = keys.at(prompts[b].key);
    pitches.push_back({pair.user_id, pair.movie_id, SampleReward::decode(codec, t), ended});
  }
  return pitches;
}

// A Trainer callback: `run` with the iteration's fields after the last AdamW step of each iteration
// (the objectives' end_step fields carry "iteration" only then); true from it, or from `stopped` when
// a run starts (a resumed run whose patience had run out), stops the run.
struct IterationEnd {
  std::function<bool(const std::map<std::string, double>&)> run;
  std::function<bool()> stopped;
  template <class Trainer>
  bool begin_run(Trainer&) {
    return stopped && stopped();
  }
  template <class Trainer, class Info>
  bool end_step(Trainer&, const Info& info) {
    return run && info.fields.contains("iteration") && run(info.fields);
  }
};

// The best evaluation so far by eval/reward (the reward models on validation pairs) and the number of
// evaluations since; the first of equal rewards wins.
struct BestEvaluation {
  double reward = -std::numeric_limits<double>::infinity();
  nlohmann::json row;
  std::size_t since = 0;
  // True when `row` (an evaluation row) is a new best.
  bool update(const nlohmann::json& r) {
    if (!r.contains("eval/reward")) return false;
    const double x = r.at("eval/reward").get<double>();
    if (x > reward) {
      reward = x, row = r, since = 0;
      return true;
    }
    ++since;
    return false;
  }
};

inline void write_metrics_csv(const std::filesystem::path& path, const std::vector<nlohmann::json>& rows) {
  std::set<std::string> names;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.items()) names.insert(k);
  std::vector<std::string> cols{"iteration"};
  for (const auto& n : names)
    if (n != "iteration") cols.push_back(n);
  std::ostringstream out;
  for (std::size_t c = 0; c < cols.size(); ++c) out << (c ? "," : "") << cols[c];
  out << '\n';
  for (const auto& r : rows) {
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (c) out << ',';
      if (r.contains(cols[c]) && r[cols[c]].is_number()) out << r[cols[c]].get<double>();
    }
    out << '\n';
  }
  io::write_file_atomically(path, out.str());
}

inline void write_rl_curves(const std::filesystem::path& path, const std::vector<nlohmann::json>& rows) {
  std::map<std::string, eval::Series> series;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.items()) {
      // Scores only (not the gold judge's claim and word counts), so the legend leaves room for the plot.
      const bool count = k.ends_with("/claims") || k.ends_with("/words") || k.ends_with("/contradicted");
      const bool wanted =
          !count && (k.starts_with("rewards/") || k.starts_with("gold/") || k.starts_with("eval/") ||
                     k == "objective/kl" || k == "objective/scores");
      if (!wanted || !v.is_number()) continue;
      auto& s = series[k];
      s.label = k;
      s.x.push_back(r.at("iteration").get<double>());
      s.y.push_back(v.get<double>());
      s.dashed = k.starts_with("gold/");
    }
  std::vector<eval::Series> lines;
  for (auto& [k, s] : series) lines.push_back(std::move(s));
  if (lines.empty()) return;
  eval::write_line_plot(path, lines,
                        {.title = "RL: reward components, KL and gold scores",
                         .x_label = "iteration",
                         .height = 260 + 18 * static_cast<int>(lines.size())});
}

}  // namespace detail

// Runs (or resumes) the RL stage. See the file comment.
inline RlResult run_rl(const RlConfig& c, PitchReward reward) {
  const auto started = std::chrono::steady_clock::now();
  if (!reward) fail<InvalidArgument>("run_rl: no reward given");
  if (*c.algo != "ppo" && *c.algo != "pg")
    fail<InvalidArgument>("--algo: '", *c.algo, "', expected ppo or pg");
  if (*c.normalize != "none" && *c.normalize != "standardize")
    fail<InvalidArgument>("--normalize: '", *c.normalize, "', expected none or standardize");
  detail::check_selection(c);
  const std::filesystem::path out = *c.out, data = *c.data;
  // Data parallel under mpirun (docs/distributed.md): every rank samples and trains its share of each
  // iteration; rank 0 alone locks the folder, evaluates and writes the files.
  const auto comm = dist::world();
  const bool root = comm.is_root();
  io::OutputLock lock;  // one run per folder
  if (root) {
    std::filesystem::create_directories(out);
    lock = io::OutputLock(out);
  }
  const auto loader = rl::PitchPolicyLoader::open(*c.sft);
  const train::PitchSources sources(data);

  // Train-split users and catalog movies; the evaluation pairs from the held-out test pairs.
  std::vector<std::int64_t> train_users, movies;
  io::for_each_jsonl(data / "profiles.jsonl", [&](const nlohmann::json& j, std::size_t) {
    if (j.at("split").get<std::string>() == "train")
      train_users.push_back(j.at("user_id").get<std::int64_t>());
  });
  io::for_each_jsonl(data / "catalog.jsonl", [&](const nlohmann::json& j, std::size_t) {
    movies.push_back(j.at("movie_id").get<std::int64_t>());
  });
  const auto heldout = data::read_records<data::HeldoutPair>(data / "heldout" / "val.jsonl");
  std::optional<eval::GoldJudge> judge;
  if (root && *c.eval_pairs > 0 && *c.gold) judge.emplace(eval::GoldJudge::load(data));

  return loader.with_policy([&](auto policy) -> RlResult {
    using Policy = decltype(policy);
    auto& keys = policy.prefix().keys();
    rl::PitchPrompter prompter(loader, sources, keys);
    // Every train user, catalog movie and evaluation pair needs a CF embedding: the data build and the
    // warm start come from one CF model. One without is an error naming it, never a smaller pool.
    auto require_cf = [&](std::int64_t u, std::int64_t m) {
      try {
        (void)keys.key(u, m);
      } catch (const InvalidArgument& e) {
        fail<InvalidArgument>("rl: ", e.what(), " in ", loader.cf_path().string(), ", the CF model of ",
                              *c.sft, ": the data in ", data.string(), " was built with another CF model");
      }
    };
    if (train_users.empty() || movies.empty())
      fail<InvalidArgument>("rl: no train user or no movie in ", data.string());
    const std::vector<std::int64_t>& users = train_users;
    const std::vector<std::int64_t>& items = movies;
    for (auto u : users) require_cf(u, items.front());
    for (auto m : items) require_cf(users.front(), m);
    std::vector<rl::Prompt> eval_prompts;
    for (const auto& h : heldout) {
      if (eval_prompts.size() >= std::size_t(*c.eval_pairs)) break;
      require_cf(h.user_id, h.movie_id);
      eval_prompts.push_back(prompter.prompt(h.user_id, h.movie_id));
    }

    const auto eos = loader.codec().eos;
    // n (train user, catalog movie) prompts drawn from rng.
    auto draw_prompts = [&](Rng& rng, std::size_t n) {
      std::vector<rl::Prompt> prompts;
      for (std::size_t k = 0; k < n; ++k)
        prompts.push_back(
            prompter.prompt(users[rng.next_u64() % users.size()], items[rng.next_u64() % items.size()]));
      return prompts;
    };
    // Standardised components: their statistics from samples of the warm start (the policy before any
    // update), drawn from their own prompt stream. The checkpoint holds them (in the Trainer's
    // fingerprint), so a resume reads them instead of sampling again; a checkpoint written before it
    // held them resumes by sampling again, which gives the same numbers.
    nlohmann::json statistics;  // {"samples": n, "components": {name: {"mean", "std"}}}; null if raw
    bool statistics_in_checkpoint = false;
    if (*c.normalize == "standardize") {
      statistics = detail::checkpoint_statistics(out / "state.safetensors");
      statistics_in_checkpoint = !statistics.is_null();
      if (!statistics_in_checkpoint) {
        Rng rng(std::uint64_t(*c.seed), detail::rl_statistics_stream);
        const auto prompts = draw_prompts(rng, std::size_t(*c.normalize_samples));
        const auto g = rl::sample_generate(policy, prompts,
                                           {.max_new_tokens = std::size_t(*c.response.response_length),
                                            .temperature = 1.0,
                                            .eos = eos,
                                            .seed = rng.next_u64()});
        const auto pitches = detail::pitches_of(keys, loader.codec(), prompts, g);
        statistics = {{"samples", pitches.size()}, {"components", nlohmann::json::object()}};
        for (const auto& [name, st] : fit_component_statistics(reward, pitches))
          statistics["components"][name] = {{"mean", st.mean}, {"std", st.std}};
      }
      if (root) io::write_file_atomically(out / "normalization.json", statistics.dump(2) + "\n");
      reward = standardized_reward(std::move(reward), component_weights(*c.weights),
                                   detail::statistics_from_json(statistics));
    }
    auto components = std::make_shared<std::map<std::string, double>>();
    detail::SampleReward sample_reward{&keys, &loader.codec(), reward, components};
    const std::size_t prompts_per_iteration =
        *c.algo == "ppo" ? std::size_t(*c.batch_size) : std::size_t(*c.batch_size / *c.rloo_k);

    // The prompts of iteration `it`, from their own stream: a resumed run draws what the whole one would.
    rl::PromptSource prompt_source = [&](std::size_t it) {
      Rng rng(std::uint64_t(*c.seed) + it, detail::rl_prompt_stream);
      return draw_prompts(rng, prompts_per_iteration);
    };

    // The objective (PPOObjective or PolicyGradientObjective) on the shared Trainer: it owns the
    // steps, AdamW, the guard, out/steps.jsonl (its record per iteration) and state.safetensors; this
    // stage adds a metrics row per iteration, the evaluations and the samples.
    auto train = [&](auto& objective) -> RlResult {
      std::vector<nlohmann::json> rows, samples;
      RlResult result;
      result.kept = *c.keep;
      detail::BestEvaluation best;
      const auto patience = std::size_t(*c.patience);
      const std::size_t per_iteration = objective.steps_per_iteration();
      auto options = rl::trainer_options(objective.config(), std::size_t(*c.iterations) * per_iteration);
      // Besides the PPO / RLOO settings (config.*), the inputs, the reward mix and the algorithm change
      // the result: a resume with one of them changed is refused. Free: --iterations, --patience,
      // --eval-every, --eval-pairs, --gold, --save-every, --progress, --out.
      options.fingerprint["sft"] = *c.sft, options.fingerprint["data"] = *c.data;
      options.fingerprint["rewards"] = *c.rewards, options.fingerprint["encoder"] = *c.encoder;
      options.fingerprint["weights"] = *c.weights, options.fingerprint["algo"] = *c.algo;
      options.fingerprint["adaptive_kl"] = *c.adaptive_kl;
      // keep = best writes the best policy as the run goes: a run started with last has not (absent
      // at the default, so checkpoints from before the option resume). --patience is free, like
      // --iterations: it only says where the same run stops.
      if (*c.keep != "last") options.fingerprint["keep"] = *c.keep;
      if (*c.normalize == "standardize")  // absent when raw: checkpoints from before the option resume
        options.fingerprint["normalize"] = *c.normalize,
        options.fingerprint["normalize_samples"] = *c.normalize_samples;
      // A new run's statistics, or those its checkpoint holds (an older checkpoint has none).
      const bool older_checkpoint =
          std::filesystem::exists(out / "state.safetensors") && !statistics_in_checkpoint;
      if (!statistics.is_null() && !older_checkpoint) options.fingerprint["normalization"] = statistics;
      options.out = out;
      options.checkpoint = "state.safetensors";
      options.train_metrics = "steps";
      options.log_every = per_iteration;  // a record per iteration: its last step carries its metrics
      options.checkpoint_every = std::size_t(*c.save_every) * per_iteration;
      options.progress = *c.progress;
      detail::IterationEnd on_iteration;
      train::Trainer trainer(objective.model(), objective, options, on_iteration);
      if (trainer.resume() && root) {
        // Rows up to the checkpoint (later ones were written after it and are redone).
        if (std::filesystem::exists(out / "metrics.jsonl"))
          io::for_each_jsonl(out / "metrics.jsonl", [&](const nlohmann::json& j, std::size_t) {
            if (j.at("iteration").get<double>() <= double(objective.iteration())) rows.push_back(j);
          });
        if (std::filesystem::exists(out / "samples.jsonl"))
          io::for_each_jsonl(out / "samples.jsonl", [&](const nlohmann::json& j, std::size_t) {
            if (j.at("iteration").get<std::size_t>() <= objective.iteration()) samples.push_back(j);
          });
        if (*c.progress)
          std::cerr << "rl: resuming " << out.string() << " at iteration " << objective.iteration() << '\n';
      }
      for (const auto& r : rows) best.update(r);

      // The pitch model as a file `p4lm pitch --model` and PitchWriter read.
      auto save_policy = [&] {
        auto& pol = objective.model().policy;
        train::PitchModel<LlamaLM<float>, typename std::decay_t<decltype(pol.prefix().adapter())>> bundle(
            pol.lm(), &pol.prefix().adapter());
        const auto st = io::SafetensorsFile::open(loader.file());
        save_checkpoint(out / "policy.safetensors", bundle, static_cast<AdamW<float>*>(nullptr),
                        {{"pitch_model", st.metadata().at("pitch_model")}});
      };
      // An evaluation row: with keep = best, a new best's policy is written at once (a resumed run
      // redoes the iterations after its checkpoint identically, so it writes the same file).
      auto record_evaluation = [&](const nlohmann::json& row) {
        if (best.update(row) && *c.keep == "best" && root) save_policy();
      };
      auto patience_spent = [&] { return patience && best.since >= patience; };
      on_iteration.stopped = patience_spent;

      // Greedy pitches for the evaluation pairs, scored by the reward and the gold judge.
      auto evaluate = [&](std::size_t iteration) {
        nlohmann::json m = nlohmann::json::object();
        if (eval_prompts.empty() || !root) return m;
        const std::size_t B = eval_prompts.size();
        const auto g =
            rl::greedy_generate(objective.model().policy, eval_prompts,
                                {.max_new_tokens = std::size_t(*c.response.response_length),
                                 .eos = eos,
                                 .no_repeat_ngram_size = std::size_t(*c.eval_no_repeat_ngram_size)});
        const auto pitches = detail::pitches_of(keys, loader.codec(), eval_prompts, g);
        std::vector<eval::PitchToJudge> judged;
        for (const auto& p : pitches) judged.push_back({p.user_id, p.movie_id, p.pitch});
        const auto scores = reward(pitches);
        const auto gold = judge ? judge->score(judged) : std::vector<eval::GoldScores>{};
        std::map<std::string, double> sums;
        for (std::size_t b = 0; b < B; ++b) {
          nlohmann::json row{{"iteration", iteration},          {"user_id", pitches[b].user_id},
                             {"movie_id", pitches[b].movie_id}, {"pitch", pitches[b].pitch},
                             {"ended", pitches[b].ended},       {"reward", scores.total.at(b)}};
          if (judge)
            for (const auto& [name, v] : eval::gold_metrics(gold[b])) row[name] = v, sums[name] += v;
          for (const auto& [name, v] : scores.components) row["rewards/" + name] = v.at(b);
          samples.push_back(row);
          sums["eval/reward"] += scores.total.at(b);
          for (const auto& [name, v] : scores.components) sums["eval/rewards/" + name + "/mean"] += v.at(b);
        }
        for (const auto& [name, v] : sums) m[name] = v / double(B);
        return m;
      };
      auto write_files = [&] {
        io::write_jsonl_with(out / "metrics.jsonl", [&](auto&& emit) {
          for (const auto& r : rows) emit(r);
        });
        detail::write_metrics_csv(out / "metrics.csv", rows);
        detail::write_rl_curves(out / "curves.svg", rows);
        io::write_jsonl_with(out / "samples.jsonl", [&](auto&& emit) {
          for (const auto& r : samples) emit(r);
        });
        std::ostringstream md;
        md << "| iteration | user | movie | reward | pitch |\n| --- | --- | --- | --- | --- |\n";
        for (const auto& r : samples) {
          std::string pitch = r.at("pitch").get<std::string>();
          std::replace(pitch.begin(), pitch.end(), '\n', ' ');
          std::replace(pitch.begin(), pitch.end(), '|', '/');
          md << "| " << r.at("iteration").get<std::size_t>() << " | " << r.at("user_id").get<std::int64_t>()
             << " | " << r.at("movie_id").get<std::int64_t>() << " | " << r.at("reward").get<double>()
             << " | " << pitch << " |\n";
        }
        io::write_file_atomically(out / "samples.md", md.str());
      };

      if (objective.iteration() == 0 && rows.empty()) {
        auto m = evaluate(0);
        m["iteration"] = 0;
        rows.push_back(m);
        record_evaluation(m);
      }
      if (!rows.empty()) result.first_eval = rows.front();
      // After each iteration's last AdamW step, before the Trainer's checkpoint of that step: files
      // first, then the state (a kill in between leaves files ahead of the state, and the resume
      // drops their extra rows; the other order would lose the rows since the previous save).
      on_iteration.run = [&](const std::map<std::string, double>& m) -> bool {
        nlohmann::json row = nlohmann::json::object();
        for (const auto& [k, v] : m) row[k] = v;  // no time/*: resumes are byte-identical
        // The reward components' means over every rank's samples (equal shares: the mean of the means).
        std::vector<double> means;
        for (const auto& [k, v] : *components) means.push_back(v / double(comm.size()));
        comm.all_reduce_sum(std::span<double>(means));
        auto mean = means.begin();
        for (const auto& [k, v] : *components) row[k] = *mean++;
        const std::size_t done = objective.iteration();
        if (done % std::size_t(*c.eval_every) == 0 || done == std::size_t(*c.iterations))
          row.update(evaluate(done));
        rows.push_back(row);
        record_evaluation(row);
        // Where patience runs out the Trainer stops and checkpoints: the files go with it.
        const bool stop = root && patience_spent() && done < std::size_t(*c.iterations);
        if (root && (stop || done % std::size_t(*c.save_every) == 0 || done == std::size_t(*c.iterations)))
          write_files();
        if (stop && *c.progress)
          std::cerr << "rl: stopping at iteration " << done << ": eval/reward has not risen in " << patience
                    << " evaluations (best " << best.reward << " at iteration "
                    << best.row.at("iteration").get<std::size_t>() << ")\n";
        return stop;
      };
      trainer.fit();
      result.iterations = objective.iteration();
      result.stopped_early = result.iterations < std::size_t(*c.iterations);
      if (!root) return result;
      write_files();
      if (*c.keep == "last") save_policy();
      if (best.reward > -std::numeric_limits<double>::infinity()) result.best_eval = best.row;
      for (auto r = rows.rbegin(); r != rows.rend(); ++r)
        if (r->contains("eval/reward")) {
          result.last_eval = *r;
          break;
        }
      result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      io::write_file_atomically(out / "result.json", result.json().dump(2) + "\n");
      return result;
    };

    // The sampling settings both configs share (rl/sampling_settings.hpp).
    auto sampling = [&](auto& p) {
      p.response_length = std::size_t(*c.response.response_length), p.eos_token_id = eos;
      p.missing_eos_penalty = *c.response.missing_eos_penalty, p.seed = std::uint64_t(*c.seed);
      p.min_response_length = std::size_t(*c.response.min_response_length);
      p.short_response_penalty = *c.response.short_response_penalty;
      p.repeated_ngram_size = std::size_t(*c.response.repeated_ngram_size);
      p.repeated_ngram_penalty = *c.response.repeated_ngram_penalty;
    };
    if (*c.algo == "ppo") {
      rl::PPOConfig p;
      p.batch_size = std::size_t(*c.batch_size), p.mini_batch_size = std::size_t(*c.mini_batch_size);
      p.ppo_epochs = std::size_t(*c.ppo_epochs), p.learning_rate = *c.learning_rate;
      p.max_grad_norm = *c.max_grad_norm, p.init_kl_coef = *c.init_kl_coef, p.target = *c.target;
      p.horizon = *c.horizon, p.kl_penalty = *c.kl_penalty, p.cliprange = *c.cliprange;
      p.cliprange_value = *c.cliprange_value, p.vf_coef = *c.vf_coef, p.gamma = *c.gamma, p.lam = *c.lam;
      sampling(p);
      if (*c.adaptive_kl) {
        rl::PPOObjective<Policy, detail::SampleReward, rl::AdaptiveKL> t(std::move(policy), sample_reward, p,
                                                                         prompt_source);
        return train(t);
      }
      rl::PPOObjective<Policy, detail::SampleReward, rl::FixedKL> t(std::move(policy), sample_reward, p,
                                                                    prompt_source);
      return train(t);
    }
    rl::PGConfig p;
    p.batch_size = std::size_t(*c.batch_size), p.rloo_k = std::size_t(*c.rloo_k);
    p.mini_batch_size = std::size_t(*c.mini_batch_size), p.learning_rate = *c.learning_rate;
    p.max_grad_norm = *c.max_grad_norm, p.init_kl_coef = *c.init_kl_coef, p.target = *c.target;
    p.horizon = *c.horizon, p.kl_penalty = *c.kl_penalty;
    sampling(p);
    if (*c.adaptive_kl) {
      rl::PolicyGradientObjective<Policy, detail::SampleReward, rl::AdaptiveKL> t(
          std::move(policy), sample_reward, p, prompt_source);
      return train(t);
    }
    rl::PolicyGradientObjective<Policy, detail::SampleReward, rl::FixedKL> t(std::move(policy), sample_reward,
                                                                             p, prompt_source);
    return train(t);
  });
}

}  // namespace p4lm::pipeline

namespace p4lm::pipeline {

// The stage with the P4LM reward mix from c.rewards (what `p4lm rl` runs).
inline RlResult run_rl(const RlConfig& c) {
  // Settings first: a typo should not wait for the models to load.
  if (*c.algo != "ppo" && *c.algo != "pg") fail<UsageError>("--algo: '", *c.algo, "', expected ppo or pg");
  if (*c.normalize != "none" && *c.normalize != "standardize")
    fail<UsageError>("--normalize: '", *c.normalize, "', expected none or standardize");
  detail::check_selection<UsageError>(c);
  (void)parse_reward_weights(*c.weights);
  const auto loader = rl::PitchPolicyLoader::open(*c.sft);
  return run_rl(c, load_reward_mix(*c.rewards, *c.weights, *c.encoder, *c.data, loader));
}

}  // namespace p4lm::pipeline
