#pragma once
// The collaborative-filtering stage: train ALS embeddings on MovieLens, evaluate saved embeddings
// against the baselines, compare every method over several seeds, tune on a validation split.
// `p4lm cf train|eval|compare|tune` parse these configs from flags and print the results.
//
//   p4lm::pipeline::CfTrainConfig c;
//   *c.out = "runs/cf"; *c.dim = 32;
//   auto r = p4lm::pipeline::train_cf(c);   // runs/cf/cf.safetensors, config.json, metrics.jsonl
//   // r.metrics["rmse"], r.metrics["ndcg@10"] on the test split (or the validation split)
//
// The configs are reflected (core/config.hpp): one definition gives the flags, their defaults and
// ranges, the help text and the config.json of a run. The training config is also stored in the
// metadata of cf.safetensors, so `evaluate_cf` and the data stage rebuild the same split from it.

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/cf/als.hpp"
#include "p4lm/cf/baselines.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/implicit_als.hpp"
#include "p4lm/cf/metrics.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/split.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/metrics.hpp"

namespace p4lm::pipeline {

// Settings of `cf train`: data, split, model hyperparameters. Its field names are the keys of the
// "config" metadata in every cf.safetensors written so far: keep them (from_json refuses unknown keys).
struct CfTrainConfig {
  Param<std::string> data{"", "MovieLens folder in the ml-25m schema (default: bundled ml-latest-small)"};
  Param<std::string> out{"runs/cf", "output folder (cf.safetensors, config.json, metrics.jsonl)"};
  Param<std::string> model{"als", "als (explicit, with biases) or implicit (Hu-Koren-Volinsky)"};
  Param<int> dim{32, "embedding width: 16, 32 or 64 (the widths compiled, cf/widths.hpp)"};
  Param<int> epochs{15, "ALS epochs", at_least(1)};
  Param<double> reg{0.15, "lambda on the factors (als: times each row's count, ALS-WR; implicit: try 30)",
                    at_least(0)};
  Param<double> reg_bias{1.0, "als: lambda on the biases", at_least(0)};
  Param<bool> weighted_reg{true, "als: scale lambda by rating counts (ALS-WR)"};
  Param<double> alpha{2.0, "implicit: confidence 1 + alpha * s", between(0, 1e6)};
  Param<bool> weight_by_rating{false, "implicit: s = rating instead of 1"};
  Param<int> cg_steps{3, "implicit: conjugate-gradient steps per solve", at_least(1)};
  Param<double> init_std{0.1, "standard deviation of the initial factors", above(0)};
  Param<std::string> split{"holdout", "holdout (random fraction per user) or temporal (last k per user)"};
  Param<double> test_fraction{0.2, "holdout: fraction of each user's ratings held out", inside(0, 1)};
  Param<int> test_k{5, "temporal: ratings per user held out", at_least(1)};
  Param<std::int64_t> seed{1, "seed of the split and of the initial factors"};
  Param<double> validation_fraction{
      0.0, "if > 0: carve this fraction of train as validation, train on the rest", between(0, 0.99)};
  Param<double> relevance{4.0, "test ratings >= this are relevant for Recall/NDCG"};
  Param<int> threads{0, "OpenMP threads (0: default)", between(0, 1024)};
  Param<bool> json{false, "print the result as one JSON object (output format only)"};
  Param<bool> progress{true, "show progress on stderr"};
};

struct CfEvalConfig {
  Param<std::string> model{"runs/cf/cf.safetensors", "embeddings written by cf train"};
  Param<std::string> data{"", "MovieLens folder (default: the one recorded in the file)"};
  Param<bool> baselines{true, "also evaluate global mean, bias-only and popularity on the same split"};
  Param<int> threads{0, "OpenMP threads (0: default)", between(0, 1024)};
  Param<bool> json{false, "print the result as one JSON object"};
};

struct CfCompareConfig {
  Param<std::string> data{"", "MovieLens folder (default: bundled ml-latest-small)"};
  Param<std::vector<std::int64_t>> seeds{{1, 2, 3}, "split seeds"};
  Param<double> test_fraction{0.2, "fraction of each user's ratings held out", inside(0, 1)};
  Param<int> dim{64, "embedding width of both ALS models (16, 32 or 64)"};
  Param<int> epochs{15, "ALS epochs", at_least(1)};
  Param<double> reg{0.15, "als: lambda (ALS-WR)", at_least(0)};
  Param<double> reg_bias{1.0, "als: lambda on the biases", at_least(0)};
  Param<double> implicit_reg{30.0, "implicit: lambda", at_least(0)};
  Param<double> alpha{2.0, "implicit: confidence slope", between(0, 1e6)};
  Param<double> relevance{4.0, "test ratings >= this are relevant"};
  Param<int> threads{0, "OpenMP threads (0: default)", between(0, 1024)};
  Param<bool> json{false, "print the table as JSON"};
};

struct CfTuneConfig {
  Param<std::string> data{"", "MovieLens folder (default: bundled ml-latest-small)"};
  Param<std::string> model{"als", "als or implicit"};
  Param<std::vector<int>> dims{{16, 32, 64}, "widths to try (each one of 16, 32, 64)"};
  Param<std::vector<double>> regs{{0.02, 0.05, 0.1}, "lambdas to try", at_least(0)};
  Param<std::vector<double>> alphas{{10.0}, "implicit: alphas to try", between(0, 1e6)};
  Param<std::vector<double>> reg_biases{{5.0}, "als: bias lambdas to try", at_least(0)};
  Param<int> epochs{15, "ALS epochs", at_least(1)};
  Param<double> test_fraction{0.2, "fraction of each user's ratings held out as test (never looked at)",
                              inside(0, 1)};
  Param<double> validation_fraction{0.2, "fraction of each user's train ratings used for validation",
                                    inside(0, 1)};
  Param<std::int64_t> seed{1, "split seed"};
  Param<double> relevance{4.0, "validation ratings >= this are relevant"};
  Param<int> threads{0, "OpenMP threads (0: default)", between(0, 1024)};
  Param<bool> json{false, "print the grid as JSON"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::CfTrainConfig, data, out, model, dim, epochs, reg, reg_bias,
                        weighted_reg, alpha, weight_by_rating, cg_steps, init_std, split, test_fraction,
                        test_k, seed, validation_fraction, relevance, threads, json, progress);
BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::CfEvalConfig, model, data, baselines, threads, json);
BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::CfCompareConfig, data, seeds, test_fraction, dim, epochs, reg,
                        reg_bias, implicit_reg, alpha, relevance, threads, json);
BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::CfTuneConfig, data, model, dims, regs, alphas, reg_biases, epochs,
                        test_fraction, validation_fraction, seed, relevance, threads, json);

namespace p4lm::pipeline {

// Metric name -> value: rmse, mae, recall@K, ndcg@K, coverage@K (K = 10, 20).
using Metrics = std::map<std::string, double>;

namespace detail {

inline void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

inline std::filesystem::path movielens_folder(const std::string& data) {
  return data.empty() ? cf::bundled_movielens() : std::filesystem::path(data);
}

inline cf::MovieLens load_ratings(const std::string& data, bool progress) {
  return cf::load_movielens(movielens_folder(data), {.tags = false, .genome = false, .progress = progress});
}

inline cf::Split make_split(const cf::Ratings& ratings, const std::string& kind, double fraction, int k,
                            std::uint64_t seed) {
  if (kind == "holdout") return cf::holdout_split(ratings, fraction, seed);
  if (kind == "temporal") return cf::temporal_split(ratings, static_cast<std::size_t>(k));
  fail<UsageError>("--split ", kind, ": expected holdout or temporal");
}

// Validation carved from train with a seed of its own, so test stays untouched.
inline cf::Split carve_validation(const cf::Ratings& train, double fraction, std::uint64_t seed) {
  return cf::holdout_split(train, fraction, seed ^ 0x5eedfaceULL);
}

inline void check_model(const std::string& model) {
  if (model != "als" && model != "implicit")
    fail<UsageError>("--model ", model, ": expected als or implicit");
}

}  // namespace detail

// Rating metrics (models that predict ratings) and ranking metrics of `model` on `test`.
template <class M>
Metrics evaluate_cf_model(const M& model, const cf::Ratings& train, const cf::Ratings& test, double relevance,
                          bool predicts_ratings = true) {
  Metrics m;
  if constexpr (cf::RatingPredictor<M>) {
    if (predicts_ratings) {
      const auto r = cf::rating_metrics(model, test, 0.5f, 5.0f);
      m["rmse"] = r.rmse;
      m["mae"] = r.mae;
    }
  }
  const auto rank = cf::ranking_metrics(
      model, train, test, {.ks = {10, 20}, .relevance_threshold = static_cast<float>(relevance)});
  for (int k : {10, 20}) {
    m["recall@" + std::to_string(k)] = rank.recall.at(k);
    m["ndcg@" + std::to_string(k)] = rank.ndcg.at(k);
    m["coverage@" + std::to_string(k)] = rank.coverage.at(k);
  }
  return m;
}

// "0.1234": how every CF command prints a metric.
inline std::string format_metric(double v, int precision = 4) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

// Fits the configured model (ALS or implicit ALS) of width Dim on `train`; each epoch's metrics on
// `watch` (validation or test; may be empty) go to `sink` (if any) and the progress line.
template <int Dim>
cf::Embeddings<Dim> fit_cf(const CfTrainConfig& c, const cf::Ratings& train, const cf::Ratings& watch,
                           MetricsSink* sink = nullptr) {
  detail::check_model(*c.model);
  Progress bar("cf train " + *c.model + " dim " + std::to_string(Dim), static_cast<std::uint64_t>(*c.epochs),
               "epoch", Progress::Options{.enabled = *c.progress});
  auto on_epoch = [&](int epoch, const cf::Embeddings<Dim>& e) {
    Metrics m;
    if (*c.model == "als") {
      m["train_rmse"] = cf::rating_metrics(e, train, 0.5f, 5.0f).rmse;
      if (!watch.empty()) m["watch_rmse"] = cf::rating_metrics(e, watch, 0.5f, 5.0f).rmse;
    } else if (!watch.empty()) {
      m["watch_ndcg@10"] =
          cf::ranking_metrics(e, train, watch,
                              {.ks = {10}, .relevance_threshold = static_cast<float>(*c.relevance)})
              .ndcg.at(10);
    }
    if (sink) sink->record(epoch, m);
    std::string note;
    for (const auto& [k, v] : m) note += (note.empty() ? "" : " ") + k + " " + format_metric(v);
    bar.advance(1, note);
  };
  const auto seed = static_cast<std::uint64_t>(*c.seed);
  if (*c.model == "als")
    return cf::ALS<Dim>({.epochs = *c.epochs,
                         .reg = static_cast<float>(*c.reg),
                         .reg_bias = static_cast<float>(*c.reg_bias),
                         .weighted_reg = *c.weighted_reg,
                         .init_std = static_cast<float>(*c.init_std),
                         .seed = seed})
        .fit(train, on_epoch);
  return cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                               .reg = static_cast<float>(*c.reg),
                               .alpha = static_cast<float>(*c.alpha),
                               .weight_by_rating = *c.weight_by_rating,
                               .cg_steps = *c.cg_steps,
                               .init_std = static_cast<float>(*c.init_std),
                               .seed = seed})
      .fit(train, on_epoch);
}

struct CfTrainResult {
  std::filesystem::path embeddings;  // <out>/cf.safetensors
  int dim = 0;
  std::string watched;           // "test", or "validation" when validation_fraction > 0
  Metrics metrics;               // of the trained model on the watched split
  nlohmann::json json() const {  // {"test": {...}} (braces alone would make a two-element array)
    nlohmann::json j = nlohmann::json::object();
    j[watched] = metrics;
    return j;
  }
};

// `p4lm cf train`: loads MovieLens, splits, fits, writes <out>/cf.safetensors (ids, training config and
// data folder in its metadata), metrics.jsonl (one record per epoch) and config.json.
inline CfTrainResult train_cf(const CfTrainConfig& c) {
  cf::check_cf_dim(*c.dim);
  detail::check_model(*c.model);
  detail::set_threads(*c.threads);
  const auto ml = detail::load_ratings(*c.data, *c.progress);
  auto split = detail::make_split(ml.ratings, *c.split, *c.test_fraction, *c.test_k,
                                  static_cast<std::uint64_t>(*c.seed));
  cf::Ratings train = split.train, watch = split.test;
  if (*c.validation_fraction > 0) {
    auto v =
        detail::carve_validation(split.train, *c.validation_fraction, static_cast<std::uint64_t>(*c.seed));
    train = std::move(v.train);
    watch = std::move(v.test);
  }
  const std::filesystem::path out = *c.out;
  std::filesystem::create_directories(out);
  MetricsSink sink(out / "metrics.jsonl");
  CfTrainResult result;
  result.embeddings = out / "cf.safetensors";
  result.dim = *c.dim;
  result.watched = *c.validation_fraction > 0 ? "validation" : "test";
  cf::with_cf_dim(*c.dim, [&](auto d) {
    constexpr int Dim = decltype(d)::value;
    auto e = fit_cf<Dim>(c, train, watch, &sink);
    e.user_ids = ml.users.ids();
    e.item_ids = ml.items.ids();
    e.metadata["config"] = to_json(c).dump();
    e.metadata["data"] = detail::movielens_folder(*c.data).string();
    save_embeddings(e, result.embeddings);
    result.metrics = evaluate_cf_model(e, train, watch, *c.relevance, *c.model == "als");
  });
  io::write_file_atomically(out / "config.json", to_json(c).dump(2) + "\n");
  return result;
}

// `p4lm cf eval`: the saved embeddings and (optionally) the baselines on the test split the file
// was trained against, rebuilt from its recorded config. {"model", "dim", "test": {method: Metrics}}.
inline nlohmann::json evaluate_cf(const CfEvalConfig& c) {
  detail::set_threads(*c.threads);
  const std::filesystem::path path = *c.model;
  nlohmann::json result;
  cf::with_cf_dim(cf::embeddings_dim(path), [&](auto d) {
    constexpr int Dim = decltype(d)::value;
    const auto e = cf::load_embeddings<Dim>(path);
    const auto it = e.metadata.find("config");
    if (it == e.metadata.end()) fail<InvalidArgument>(path.string(), ": no training config in the metadata");
    const auto t = from_json<CfTrainConfig>(nlohmann::json::parse(it->second));
    const std::string data = !c.data->empty()           ? *c.data
                             : e.metadata.count("data") ? e.metadata.at("data")
                                                        : *t.data;
    const auto ml = detail::load_ratings(data, false);
    if (ml.users.ids() != e.user_ids || ml.items.ids() != e.item_ids)
      fail<InvalidArgument>(path.string(), ": its user/item ids do not match the data in ", data);
    const auto split = detail::make_split(ml.ratings, *t.split, *t.test_fraction, *t.test_k,
                                          static_cast<std::uint64_t>(*t.seed));
    result["model"] = e.metadata.count("model") ? e.metadata.at("model") : "?";
    result["dim"] = Dim;
    result["test"] = {{result["model"].get<std::string>(),
                       evaluate_cf_model(e, split.train, split.test, *t.relevance, *t.model == "als")}};
    if (*c.baselines) {
      result["test"]["global-mean"] =
          evaluate_cf_model(cf::GlobalMean::fit(split.train), split.train, split.test, *t.relevance);
      result["test"]["bias-only"] =
          evaluate_cf_model(cf::BiasOnly::fit(split.train), split.train, split.test, *t.relevance);
      result["test"]["popularity"] =
          evaluate_cf_model(cf::Popularity::fit(split.train), split.train, split.test, *t.relevance);
    }
  });
  return result;
}

// Every method's metrics over the seeds of `cf compare`: method -> metric -> one value per seed.
struct CfComparison {
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  static const std::vector<std::string>& methods() {
    static const std::vector<std::string> order{"global-mean", "bias-only", "popularity", "als",
                                                "implicit-als"};
    return order;
  }
  struct MeanStd {
    double mean = 0, std = 0;  // std: sample standard deviation (0 for one seed)
  };
  static MeanStd mean_std(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    const double mean = s / static_cast<double>(v.size());
    double ss = 0;
    for (double x : v) ss += (x - mean) * (x - mean);
    return {mean, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
  }
  nlohmann::json json() const {
    nlohmann::json j;
    for (const auto& [method, metrics] : values)
      for (const auto& [k, v] : metrics) {
        const auto ms = mean_std(v);
        j[method][k] = {{"mean", ms.mean}, {"std", ms.std}, {"values", v}};
      }
    return j;
  }
  // A Markdown table, one row per method, "mean ± std" per metric column.
  std::string markdown() const {
    const std::vector<std::string> columns{"rmse",      "mae",     "recall@10",  "ndcg@10",
                                           "recall@20", "ndcg@20", "coverage@10"};
    std::ostringstream os;
    os << "| method |";
    for (const auto& col : columns) os << ' ' << col << " |";
    os << "\n|---|";
    for (std::size_t i = 0; i < columns.size(); ++i) os << "---|";
    os << '\n';
    for (const auto& method : methods()) {
      os << "| " << method << " |";
      const auto m = values.find(method);
      for (const auto& col : columns) {
        if (m == values.end() || !m->second.count(col)) {
          os << " n/a |";
          continue;
        }
        const auto ms = mean_std(m->second.at(col));
        os << ' ' << format_metric(ms.mean) << " ± " << format_metric(ms.std) << " |";
      }
      os << '\n';
    }
    return os.str();
  }
};

// `p4lm cf compare`: the baselines, ALS and implicit ALS on a holdout split per seed.
// on_seed(seed) is called after each seed (progress).
inline CfComparison compare_cf(const CfCompareConfig& c,
                               const std::function<void(std::int64_t)>& on_seed = {}) {
  if (c.seeds->empty()) fail<UsageError>("--seeds: give at least one");
  cf::check_cf_dim(*c.dim);
  detail::set_threads(*c.threads);
  const auto ml = detail::load_ratings(*c.data, false);
  CfComparison out;
  for (const auto seed : *c.seeds) {
    const auto s = cf::holdout_split(ml.ratings, *c.test_fraction, static_cast<std::uint64_t>(seed));
    auto add = [&](const std::string& name, const Metrics& m) {
      for (const auto& [k, v] : m) out.values[name][k].push_back(v);
    };
    add("global-mean", evaluate_cf_model(cf::GlobalMean::fit(s.train), s.train, s.test, *c.relevance));
    add("bias-only", evaluate_cf_model(cf::BiasOnly::fit(s.train), s.train, s.test, *c.relevance));
    add("popularity", evaluate_cf_model(cf::Popularity::fit(s.train), s.train, s.test, *c.relevance));
    cf::with_cf_dim(*c.dim, [&](auto d) {
      constexpr int Dim = decltype(d)::value;
      const auto model_seed = static_cast<std::uint64_t>(seed);
      add("als", evaluate_cf_model(cf::ALS<Dim>({.epochs = *c.epochs,
                                                 .reg = static_cast<float>(*c.reg),
                                                 .reg_bias = static_cast<float>(*c.reg_bias),
                                                 .seed = model_seed})
                                       .fit(s.train),
                                   s.train, s.test, *c.relevance));
      add("implicit-als", evaluate_cf_model(cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                                                                  .reg = static_cast<float>(*c.implicit_reg),
                                                                  .alpha = static_cast<float>(*c.alpha),
                                                                  .seed = model_seed})
                                                .fit(s.train),
                                            s.train, s.test, *c.relevance, false));
    });
    if (on_seed) on_seed(seed);
  }
  return out;
}

// One setting of `cf tune` and its validation metrics.
struct CfTuneRow {
  int dim = 0;
  double reg = 0, extra = 0;  // extra: reg_bias (als) or alpha (implicit)
  Metrics validation;
  nlohmann::json json(bool explicit_model) const {
    return {{"dim", dim},
            {"reg", reg},
            {explicit_model ? "reg_bias" : "alpha", extra},
            {"validation", validation}};
  }
};

struct CfTuneResult {
  bool explicit_model = true;
  std::string criterion;  // rmse (als, lower is better) or ndcg@10 (implicit, higher is better)
  std::map<std::string, Metrics> baselines;  // bias-only and popularity on the same validation split
  std::vector<CfTuneRow> grid;
  std::size_t best = 0;  // index into grid
  nlohmann::json json() const {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : grid) rows.push_back(r.json(explicit_model));
    return {{"grid", rows},
            {"best", grid.empty() ? nlohmann::json() : grid[best].json(explicit_model)},
            {"criterion", criterion},
            {"baselines", baselines}};
  }
};

// `p4lm cf tune`: the grid dims x regs x (reg_biases | alphas) on a validation split carved from the
// training part of a holdout split (the test part is never looked at). on_row is called per setting.
inline CfTuneResult tune_cf(const CfTuneConfig& c,
                            const std::function<void(const CfTuneResult&, const CfTuneRow&)>& on_row = {}) {
  detail::check_model(*c.model);
  for (int dim : *c.dims) cf::check_cf_dim(dim);
  detail::set_threads(*c.threads);
  const auto ml = detail::load_ratings(*c.data, false);
  const auto seed = static_cast<std::uint64_t>(*c.seed);
  const auto outer = cf::holdout_split(ml.ratings, *c.test_fraction, seed);
  const auto v = detail::carve_validation(outer.train, *c.validation_fraction, seed);
  CfTuneResult r;
  r.explicit_model = *c.model == "als";
  r.criterion = r.explicit_model ? "rmse" : "ndcg@10";
  r.baselines["bias-only"] = evaluate_cf_model(cf::BiasOnly::fit(v.train), v.train, v.test, *c.relevance);
  r.baselines["popularity"] = evaluate_cf_model(cf::Popularity::fit(v.train), v.train, v.test, *c.relevance);
  for (int dim : *c.dims)
    for (double reg : *c.regs)
      for (double extra : r.explicit_model ? *c.reg_biases : *c.alphas) {
        CfTuneRow row{dim, reg, extra, {}};
        row.validation = cf::with_cf_dim(dim, [&](auto d) {
          constexpr int Dim = decltype(d)::value;
          if (r.explicit_model)
            return evaluate_cf_model(cf::ALS<Dim>({.epochs = *c.epochs,
                                                   .reg = static_cast<float>(reg),
                                                   .reg_bias = static_cast<float>(extra),
                                                   .seed = seed})
                                         .fit(v.train),
                                     v.train, v.test, *c.relevance);
          return evaluate_cf_model(cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                                                         .reg = static_cast<float>(reg),
                                                         .alpha = static_cast<float>(extra),
                                                         .seed = seed})
                                       .fit(v.train),
                                   v.train, v.test, *c.relevance, false);
        });
        r.grid.push_back(std::move(row));
        const double score = r.grid.back().validation.at(r.criterion);
        const double best = r.grid[r.best].validation.at(r.criterion);
        if (r.grid.size() == 1 || (r.explicit_model ? score < best : score > best))
          r.best = r.grid.size() - 1;
        if (on_row) on_row(r, r.grid.back());
      }
  return r;
}

}  // namespace p4lm::pipeline
