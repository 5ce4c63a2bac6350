#pragma once
// Training the four reward heads on a data build's files with the shared Trainer, and their held-out
// figures on the test users' files. The MiniLM encoder stays frozen (TextFeatures caches its
// features); only each reward's MlpHead is trained, one objective each (head_objectives.hpp).
//
//   auto f = std::make_shared<reward::TextFeatures>("models/all-minilm-l6-v2");
//   reward::RewardTrainOptions o{.max_train = 3000};
//   auto [appeal, figures] = reward::train_appeal(f, "runs/data", o);   // figures["pair_accuracy"], ...
//   appeal.save("runs/rewards/appeal.safetensors");
//
// What `p4lm rewards train` runs, resumable: train_rewards(f, {.data = ..., .out = ...}) trains each
// wanted head with checkpoints in `out` (<name>.checkpoint.safetensors, <name>_metrics.jsonl/.csv)
// and writes <name>.safetensors and heldout.json. A killed run, rerun, continues each head from its
// last checkpoint (a finished head from its final one) and ends with the files of an uninterrupted run.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/reward/appeal.hpp"
#include "p4lm/reward/head_objectives.hpp"
#include "p4lm/reward/personalization.hpp"
#include "p4lm/reward/precision.hpp"
#include "p4lm/reward/preference_relevance.hpp"
#include "p4lm/train/trainer.hpp"

namespace p4lm::reward {

struct RewardTrainOptions {
  std::size_t max_train = 800;  // examples (pairs) drawn from train.jsonl: encoding is the cost
  std::size_t max_test = 400;   // held-out examples from test.jsonl
  std::size_t steps = 600, batch = 32, hidden = 64;
  // Precision reads token rows and needs more examples and steps than the sentence-level heads to
  // generalise to unseen movies (docs/rewards.md); 0: max_train and steps.
  std::size_t precision_max_train = 0, precision_steps = 0;
  double lr = 2e-3, weight_decay = 0.01;
  std::uint64_t seed = 1;
  bool progress = false;
  // Checkpoints and learning curves of each head in this folder (empty: none): <name>.checkpoint.
  // safetensors every checkpoint_every steps and at the end, <name>_metrics.jsonl/.csv. With resume,
  // a head continues from its checkpoint (refused if an option that changes the result differs).
  std::filesystem::path out{};
  std::size_t checkpoint_every = 50;
  bool resume = true;
};

// The options that change a head: a resume with any of them changed is refused, listing them.
// max_test, out, checkpoint_every, resume and progress are free to change.
inline nlohmann::json reward_fingerprint(const RewardTrainOptions& o, const std::filesystem::path& data,
                                         const std::filesystem::path& encoder) {
  return {{"data", data.string()},
          {"encoder", encoder.string()},
          {"max_train", o.max_train},
          {"steps", o.steps},
          {"batch", o.batch},
          {"hidden", o.hidden},
          {"lr", o.lr},
          {"weight_decay", o.weight_decay},
          {"seed", o.seed}};
}

using Figures = std::map<std::string, double>;

template <class R>
std::vector<R> take(std::vector<R> v, std::size_t n, std::uint64_t seed) {
  if (v.size() > n) {
    Rng rng(seed, 0x7a4e);
    for (std::size_t k = v.size(); k > 1; --k) std::swap(v[k - 1], v[static_cast<std::size_t>(rng.below(k))]);
    v.resize(n);
  }
  return v;
}

template <class Objective>
void fit_head(MlpHead<float>& head, Objective& objective, const RewardTrainOptions& o,
              const std::string& label, nlohmann::json fingerprint = nlohmann::json::object()) {
  train::TrainerOptions t;
  t.phases = {{.steps = o.steps,
               .schedule = {.peak_lr = o.lr,
                            .warmup_steps = o.steps / 20,
                            .total_steps = o.steps,
                            .min_lr = o.lr / 10},
               .optimizer = {.lr = o.lr, .beta2 = 0.999, .weight_decay = o.weight_decay}}};
  t.progress = o.progress;
  t.label = label;
  if (o.out.empty()) {
    t.final_checkpoint = false;
  } else {
    t.out = o.out;
    t.checkpoint = label + ".checkpoint.safetensors";
    t.train_metrics = label + "_metrics";
    t.eval_metrics = label + "_eval_metrics";
    t.log_every = std::max<std::size_t>(1, o.steps / 100);
    t.checkpoint_every = o.checkpoint_every;
    t.fingerprint = std::move(fingerprint);
    if (!o.resume && dist::world().is_root())  // rank 0 alone owns the folder (docs/distributed.md)
      for (const auto& f : {t.checkpoint, t.train_metrics + ".jsonl", t.train_metrics + ".csv",
                            t.eval_metrics + ".jsonl", t.eval_metrics + ".csv"})
        std::filesystem::remove(o.out / f);
  }
  train::Trainer trainer(head, objective, t);
  if (!o.out.empty() && o.resume) trainer.resume();
  trainer.fit();
}

// Rank correlation (Spearman: Pearson of average ranks).
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ranks = [](const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](auto i, auto j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < idx.size();) {
      std::size_t j = i;
      while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j);
      i = j + 1;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double n = double(ra.size()), ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n,
               mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

// The winning and losing side of each pair as rollouts.
inline std::pair<std::vector<Rollout>, std::vector<Rollout>> pair_rollouts(
    const std::vector<data::PreferencePair>& pairs) {
  std::vector<Rollout> w, l;
  for (const auto& p : pairs) {
    const bool a_wins = p.winner == "a";
    w.push_back(
        {.pitch = a_wins ? p.a : p.b, .user_id = p.user_id, .movie_id = p.movie_id, .profile = p.profile});
    l.push_back(
        {.pitch = a_wins ? p.b : p.a, .user_id = p.user_id, .movie_id = p.movie_id, .profile = p.profile});
  }
  return {std::move(w), std::move(l)};
}

// Share of pairs whose winner the reward scores above the loser.
template <class Reward>
double pair_accuracy(Reward& r, const std::vector<data::PreferencePair>& pairs) {
  const auto [w, l] = pair_rollouts(pairs);
  const auto sw = r.score(w), sl = r.score(l);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < pairs.size(); ++i) ok += sw[i] > sl[i];
  return double(ok) / double(std::max<std::size_t>(pairs.size(), 1));
}

// The Bradley-Terry objective over a reward's features of the winners and losers: one row per pitch
// (Appeal), or one row per sentence (Personalization's SentenceRows).
template <class Features>
auto bradley_terry_objective(Features w, Features l, std::size_t width, const RewardTrainOptions& o) {
  if constexpr (std::is_same_v<Features, SentenceRows>)
    return SentenceBradleyTerryObjective<float>(std::move(w.rows), std::move(w.offsets), std::move(l.rows),
                                                std::move(l.offsets), width, o.batch, o.seed);
  else
    return BradleyTerryObjective<float>(std::move(w), std::move(l), width, o.batch, o.seed);
}

template <class Reward>
std::pair<Reward, Figures> train_bradley_terry(std::shared_ptr<TextFeatures> f,
                                               const std::filesystem::path& dir, const RewardTrainOptions& o,
                                               std::size_t width) {
  const std::string n(Reward::name());
  Reward r(f, MlpHead<float>(width, o.hidden, 1, o.seed));
  const auto train_pairs =
      take(data::read_records<data::PreferencePair>(dir / n / "train.jsonl"), o.max_train, o.seed);
  const auto [w, l] = pair_rollouts(train_pairs);
  auto obj = bradley_terry_objective(r.features(w), r.features(l), width, o);
  auto fp = reward_fingerprint(o, dir, f->model_dir());
  fp["width"] = width;
  if constexpr (requires { Reward::pitch_score; }) fp["pitch_score"] = std::string(Reward::pitch_score);
  fit_head(r.head(), obj, o, n, fp);
  const auto test =
      take(data::read_records<data::PreferencePair>(dir / n / "test.jsonl"), o.max_test, o.seed);
  Figures fig{{"train_pairs", double(train_pairs.size())},
              {"test_pairs", double(test.size())},
              {"train_pair_accuracy", pair_accuracy(r, train_pairs)},
              {"pair_accuracy", pair_accuracy(r, test)}};
  return {std::move(r), fig};
}

inline std::pair<Appeal<>, Figures> train_appeal(std::shared_ptr<TextFeatures> f,
                                                 const std::filesystem::path& dir,
                                                 const RewardTrainOptions& o) {
  return train_bradley_terry<Appeal<>>(f, dir, o, f->dim());
}
inline std::pair<Personalization<>, Figures> train_personalization(std::shared_ptr<TextFeatures> f,
                                                                   const std::filesystem::path& dir,
                                                                   const RewardTrainOptions& o) {
  return train_bradley_terry<Personalization<>>(f, dir, o, Personalization<>::head_width(f->dim()));
}

inline double nli_accuracy(Precision<>& r, const std::vector<data::NliPair>& v) {
  std::vector<std::string> p, h;
  for (const auto& x : v) p.push_back(x.premise), h.push_back(x.hypothesis);
  const auto z = r.logits(p, h);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < v.size(); ++i) ok += (z[i] > 0) == (v[i].label == "entailment");
  return double(ok) / double(std::max<std::size_t>(v.size(), 1));
}

inline std::pair<Precision<>, Figures> train_precision(std::shared_ptr<TextFeatures> f,
                                                       const std::filesystem::path& dir,
                                                       const RewardTrainOptions& o) {
  const std::size_t width = Precision<>::head_width(f->dim());
  Precision<> r(f, MlpHead<float>(width, o.hidden, 1, o.seed));
  RewardTrainOptions po = o;
  if (o.precision_max_train) po.max_train = o.precision_max_train;
  if (o.precision_steps) po.steps = o.precision_steps;
  const auto tr = take(data::read_records<data::NliPair>(dir / "nli" / "train.jsonl"), po.max_train, o.seed);
  std::vector<std::string> p, h;
  std::vector<float> y;
  for (const auto& x : tr) {
    if (x.label != "entailment" && x.label != "contradiction")
      fail<InvalidArgument>((dir / "nli" / "train.jsonl").string(), ": label '", x.label,
                            "' is not entailment/contradiction");
    p.push_back(x.premise), h.push_back(x.hypothesis), y.push_back(x.label == "entailment" ? 1.f : 0.f);
  }
  auto a = f->alignment(p, h);
  TokenNliObjective<float> obj(std::move(a.rows), std::move(a.offsets), std::move(y), width, o.batch, o.seed);
  auto fp = reward_fingerprint(po, dir, f->model_dir());
  fp["features"] = "token_alignment";
  fit_head(r.head(), obj, po, "precision", fp);
  const auto test = take(data::read_records<data::NliPair>(dir / "nli" / "test.jsonl"), o.max_test, o.seed);
  Figures fig{{"train_pairs", double(tr.size())},
              {"test_pairs", double(test.size())},
              {"train_nli_accuracy", nli_accuracy(r, tr)},
              {"nli_accuracy", nli_accuracy(r, test)}};
  return {std::move(r), fig};
}

// R² over all target numbers and the rank correlation of user·q with the CF score user·item over the
// test examples. users: the CF model the data build's targets came from (its user_ids); an example
// whose user has no row there is an InvalidArgument.
template <int Dim>
Figures relevance_figures(PreferenceRelevance<backend::cpu, Dim>& r,
                          const std::vector<data::RelevanceExample>& v, const cf::Embeddings<Dim>& cf) {
  std::vector<std::string> t;
  for (const auto& x : v) t.push_back(x.pitch);
  const auto q = r.item_vectors(t);
  std::vector<double> mean(Dim, 0.0);
  for (const auto& x : v)
    for (int k = 0; k < Dim; ++k) mean[k] += x.target[k] / double(v.size());
  double sse = 0, sst = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    for (int k = 0; k < Dim; ++k) {
      sse += std::pow(q[i * Dim + k] - v[i].target[k], 2);
      sst += std::pow(v[i].target[k] - mean[k], 2);
    }
  std::map<std::int64_t, std::size_t> user_index;
  for (std::size_t u = 0; u < cf.n_users(); ++u)  // index = id when the file has no id list
    user_index[cf.user_ids.empty() ? static_cast<std::int64_t>(u) : cf.user_ids[u]] = u;
  std::vector<double> ours, theirs;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto it = user_index.find(v[i].user_id);
    if (it == user_index.end())  // never a correlation over fewer examples than reported
      fail<InvalidArgument>("preference relevance: user ", v[i].user_id, " (example for movie ",
                            v[i].movie_id, ") has no row in the CF model (", cf.n_users(),
                            " users): the data was built with another CF model");
    const auto u = cf.user(cf::Index(it->second));
    double a = 0, b = 0;
    for (int k = 0; k < Dim; ++k) a += u[k] * q[i * Dim + k], b += u[k] * v[i].target[k];
    ours.push_back(a), theirs.push_back(b);
  }
  return {{"r2", sst > 0 ? 1 - sse / sst : 0.0},
          {"cf_rank_correlation", spearman(ours, theirs)},
          {"test_examples", double(v.size())}};
}

template <int Dim>
std::pair<PreferenceRelevance<backend::cpu, Dim>, Figures> train_relevance(
    std::shared_ptr<TextFeatures> f, const std::filesystem::path& dir, const std::filesystem::path& cf_file,
    const RewardTrainOptions& o) {
  const auto file = dir / "relevance" / "train.jsonl";
  auto tr = take(data::read_records<data::RelevanceExample>(file), o.max_train, o.seed);
  std::vector<std::string> t;
  std::vector<float> y;
  for (const auto& x : tr) {
    if (x.target.size() != std::size_t(Dim))
      throw ParseError(file, 0, "target",
                       "has " + std::to_string(x.target.size()) + " numbers, the CF width is " +
                           std::to_string(Dim) + (x.target.empty() ? " (build the data with --cf)" : ""));
    t.push_back(x.pitch), y.insert(y.end(), x.target.begin(), x.target.end());
  }
  PreferenceRelevance<backend::cpu, Dim> r(f, MlpHead<float>(f->dim(), o.hidden, Dim, o.seed));
  RegressionObjective<float> obj(text_rows(*f, t), std::move(y), f->dim(), Dim, o.batch, o.seed);
  auto fp = reward_fingerprint(o, dir, f->model_dir());
  fp["cf"] = cf_file.string();
  fit_head(r.head(), obj, o, "preference_relevance", fp);
  const auto cf = cf::load_embeddings<Dim>(cf_file);
  auto fig = relevance_figures(
      r,
      take(data::read_records<data::RelevanceExample>(dir / "relevance" / "test.jsonl"), o.max_test, o.seed),
      cf);
  fig["train_examples"] = double(tr.size());
  fig["train_r2"] = relevance_figures(r, tr, cf)["r2"];
  return {std::move(r), fig};
}

// ---- `p4lm rewards train` ----

inline constexpr std::array<const char*, 4> reward_names{"precision", "appeal", "personalization",
                                                         "preference_relevance"};

// `only`: a comma list of reward names, empty for all; an unknown name is an error.
inline bool reward_wanted(const std::string& only, const std::string& name) {
  if (only.empty()) return true;
  std::stringstream in(only);
  std::string item;
  bool found = false;
  while (std::getline(in, item, ',')) {
    if (std::find(reward_names.begin(), reward_names.end(), item) == reward_names.end())
      fail<UsageError>("--only: unknown reward '", item,
                       "' (precision, appeal, personalization, preference_relevance)");
    found = found || item == name;
  }
  return found;
}

// The CF model of the relevance targets: `cf`, or the one the data build recorded in config.json.
inline std::filesystem::path relevance_cf_path(const std::filesystem::path& data,
                                               const std::filesystem::path& cf) {
  if (!cf.empty()) return cf;
  const auto config = data / "config.json";
  if (!std::filesystem::exists(config))
    fail<UsageError>("preference_relevance: ", config.string(), " does not exist (give --cf)");
  const auto j = nlohmann::json::parse(io::read_file(config));
  const std::string p = j.value("cf", "");
  if (p.empty()) fail<UsageError>("preference_relevance needs a data build made with --cf (or give --cf)");
  return p;
}

struct RewardsTraining {
  std::filesystem::path data{};  // p4lm data build folder
  std::filesystem::path out{};   // <name>.safetensors, heldout.json, checkpoints and metrics
  std::filesystem::path cf{};    // CF model of the relevance targets (empty: the data build's)
  std::string only{};            // comma list of reward names (empty: all)
  RewardTrainOptions options{};  // options.out is set to out
};

// Trains the wanted rewards in the order of reward_names, saving each as out/<name>.safetensors, then
// writes out/heldout.json ({name: figures}, no wall time: a resumed run writes the same bytes).
// on_trained(name, figures) is called after each head (the CLI prints and times them).
inline std::map<std::string, Figures> train_rewards(
    std::shared_ptr<TextFeatures> f, const RewardsTraining& r,
    const std::function<void(const std::string&, const Figures&)>& on_trained = {}) {
  for (const char* name : reward_names) (void)reward_wanted(r.only, name);  // unknown names first
  std::filesystem::create_directories(r.out);
  // Data parallel (mpirun, docs/distributed.md): every rank trains each head; rank 0 alone locks the
  // folder and writes into it.
  const bool root = dist::world().is_root();
  io::OutputLock lock;  // one run per folder (each head's Trainer takes it again)
  if (root) lock = io::OutputLock(r.out);
  RewardTrainOptions o = r.options;
  o.out = r.out;
  std::map<std::string, Figures> table;
  const auto done = [&](const std::string& name, Figures fig) {
    table[name] = fig;
    if (on_trained) on_trained(name, fig);
  };
  if (reward_wanted(r.only, "precision")) {
    auto [model, fig] = train_precision(f, r.data, o);
    if (root) model.save(r.out / "precision.safetensors");
    done("precision", fig);
  }
  if (reward_wanted(r.only, "appeal")) {
    auto [model, fig] = train_appeal(f, r.data, o);
    if (root) model.save(r.out / "appeal.safetensors");
    done("appeal", fig);
  }
  if (reward_wanted(r.only, "personalization")) {
    auto [model, fig] = train_personalization(f, r.data, o);
    if (root) model.save(r.out / "personalization.safetensors");
    done("personalization", fig);
  }
  if (reward_wanted(r.only, "preference_relevance")) {
    const auto cf_file = relevance_cf_path(r.data, r.cf);
    cf::with_cf_dim(cf::embeddings_dim(cf_file), [&](auto d) {
      auto [model, fig] = train_relevance<decltype(d)::value>(f, r.data, cf_file, o);
      if (root) model.save(r.out / "preference_relevance.safetensors");
      done("preference_relevance", fig);
    });
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, fig] : table) j[name] = fig;
  if (root) io::write_file_atomically(r.out / "heldout.json", j.dump(2) + "\n");
  return table;
}

}  // namespace p4lm::reward
