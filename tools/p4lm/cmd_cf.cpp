// `p4lm cf train|eval|compare|tune`: collaborative filtering on MovieLens (stage 2 of the pipeline).
//   p4lm cf train --out runs/cf --model als --dim 32      -> runs/cf/cf.safetensors, config.json,
//   metrics.jsonl p4lm cf eval --model runs/cf/cf.safetensors           -> test metrics of the saved
//   embeddings + baselines p4lm cf compare --seeds 1,2,3                         -> every method on every
//   seed, mean +- std p4lm cf tune --model als --dims 16,32 --regs 0.02,0.05 -> grid on a validation split
//   carved from train

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <p4lm/cf/als.hpp>
#include <p4lm/cf/baselines.hpp>
#include <p4lm/cf/embeddings.hpp>
#include <p4lm/cf/implicit_als.hpp>
#include <p4lm/cf/metrics.hpp>
#include <p4lm/cf/movielens.hpp>
#include <p4lm/cf/split.hpp>
#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

// Settings shared by every cf subcommand: data, split, model hyperparameters.
struct CfTrainConfig {
  Param<std::string> data{"", "MovieLens folder in the ml-25m schema (default: bundled ml-latest-small)"};
  Param<std::string> out{"runs/cf", "output folder (cf.safetensors, config.json, metrics.jsonl)"};
  Param<std::string> model{"als", "als (explicit, with biases) or implicit (Hu-Koren-Volinsky)"};
  Param<int> dim{32, "embedding width: 8, 16, 32, 64 or 128"};
  Param<int> epochs{15, "ALS epochs"};
  Param<double> reg{0.15, "lambda on the factors (als: times each row's count, ALS-WR; implicit: try 30)"};
  Param<double> reg_bias{1.0, "als: lambda on the biases"};
  Param<bool> weighted_reg{true, "als: scale lambda by rating counts (ALS-WR)"};
  Param<double> alpha{2.0, "implicit: confidence 1 + alpha * s"};
  Param<bool> weight_by_rating{false, "implicit: s = rating instead of 1"};
  Param<int> cg_steps{3, "implicit: conjugate-gradient steps per solve"};
  Param<double> init_std{0.1, "standard deviation of the initial factors"};
  Param<std::string> split{"holdout", "holdout (random fraction per user) or temporal (last k per user)"};
  Param<double> test_fraction{0.2, "holdout: fraction of each user's ratings held out"};
  Param<int> test_k{5, "temporal: ratings per user held out"};
  Param<std::int64_t> seed{1, "seed of the split and of the initial factors"};
  Param<double> validation_fraction{0.0,
                                    "if > 0: carve this fraction of train as validation, train on the rest"};
  Param<double> relevance{4.0, "test ratings >= this are relevant for Recall/NDCG"};
  Param<int> threads{0, "OpenMP threads (0: default)"};
  Param<bool> json{false, "print the result as one JSON object"};
  Param<bool> progress{true, "show progress on stderr"};
};

struct CfEvalConfig {
  Param<std::string> model{"runs/cf/cf.safetensors", "embeddings written by cf train"};
  Param<std::string> data{"", "MovieLens folder (default: the one recorded in the file)"};
  Param<bool> baselines{true, "also evaluate global mean, bias-only and popularity on the same split"};
  Param<int> threads{0, "OpenMP threads (0: default)"};
  Param<bool> json{false, "print the result as one JSON object"};
};

struct CfCompareConfig {
  Param<std::string> data{"", "MovieLens folder (default: bundled ml-latest-small)"};
  Param<std::vector<std::int64_t>> seeds{{1, 2, 3}, "split seeds"};
  Param<double> test_fraction{0.2, "fraction of each user's ratings held out"};
  Param<int> dim{64, "embedding width of both ALS models"};
  Param<int> epochs{15, "ALS epochs"};
  Param<double> reg{0.15, "als: lambda (ALS-WR)"};
  Param<double> reg_bias{1.0, "als: lambda on the biases"};
  Param<double> implicit_reg{30.0, "implicit: lambda"};
  Param<double> alpha{2.0, "implicit: confidence slope"};
  Param<double> relevance{4.0, "test ratings >= this are relevant"};
  Param<int> threads{0, "OpenMP threads (0: default)"};
  Param<bool> json{false, "print the table as JSON"};
};

struct CfTuneConfig {
  Param<std::string> data{"", "MovieLens folder (default: bundled ml-latest-small)"};
  Param<std::string> model{"als", "als or implicit"};
  Param<std::vector<int>> dims{{16, 32, 64}, "widths to try"};
  Param<std::vector<double>> regs{{0.02, 0.05, 0.1}, "lambdas to try"};
  Param<std::vector<double>> alphas{{10.0}, "implicit: alphas to try"};
  Param<std::vector<double>> reg_biases{{5.0}, "als: bias lambdas to try"};
  Param<int> epochs{15, "ALS epochs"};
  Param<double> test_fraction{0.2, "fraction of each user's ratings held out as test (never looked at)"};
  Param<double> validation_fraction{0.2, "fraction of each user's train ratings used for validation"};
  Param<std::int64_t> seed{1, "split seed"};
  Param<double> relevance{4.0, "validation ratings >= this are relevant"};
  Param<int> threads{0, "OpenMP threads (0: default)"};
  Param<bool> json{false, "print the grid as JSON"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::CfTrainConfig, data, out, model, dim, epochs, reg, reg_bias, weighted_reg,
                        alpha, weight_by_rating, cg_steps, init_std, split, test_fraction, test_k, seed,
                        validation_fraction, relevance, threads, json, progress);
BOOST_HANA_ADAPT_STRUCT(p4lm::cli::CfEvalConfig, model, data, baselines, threads, json);
BOOST_HANA_ADAPT_STRUCT(p4lm::cli::CfCompareConfig, data, seeds, test_fraction, dim, epochs, reg, reg_bias,
                        implicit_reg, alpha, relevance, threads, json);
BOOST_HANA_ADAPT_STRUCT(p4lm::cli::CfTuneConfig, data, model, dims, regs, alphas, reg_biases, epochs,
                        test_fraction, validation_fraction, seed, relevance, threads, json);

namespace p4lm::cli {
namespace {

using Metrics = std::map<std::string, double>;

// The widths `p4lm cf` is compiled for.
using CfDims = cf::DimList<8, 16, 32, 64, 128>;
template <class F>
decltype(auto) with_dim(int dim, F&& f) {
  return CfDims::visit<UsageError>(dim, std::forward<F>(f), "--dim");
}

void set_threads(int threads) {
  if (threads < 0) fail<UsageError>("--threads must be >= 0");
  if (threads > 0) omp_set_num_threads(threads);
}

std::filesystem::path data_folder(const std::string& data) {
  return data.empty() ? cf::bundled_movielens() : std::filesystem::path(data);
}

cf::MovieLens load(const std::string& data, bool progress) {
  return cf::load_movielens(data_folder(data), {.tags = false, .genome = false, .progress = progress});
}

cf::Split make_split(const cf::Ratings& ratings, const std::string& kind, double fraction, int k,
                     std::uint64_t seed) {
  if (kind == "holdout") return cf::holdout_split(ratings, fraction, seed);
  if (kind == "temporal") return cf::temporal_split(ratings, static_cast<std::size_t>(k));
  fail<UsageError>("--split ", kind, ": expected holdout or temporal");
}

// Validation carved from train with a seed of its own, so test stays untouched.
cf::Split carve_validation(const cf::Ratings& train, double fraction, std::uint64_t seed) {
  return cf::holdout_split(train, fraction, seed ^ 0x5eedfaceULL);
}

template <class M>
Metrics evaluate(const M& model, const cf::Ratings& train, const cf::Ratings& test, double relevance,
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

std::string fmt(double v, int precision = 4) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

void print_metrics(const std::string& title, const Metrics& m) {
  std::cout << title << ':';
  for (const auto& [k, v] : m) std::cout << ' ' << k << '=' << fmt(v);
  std::cout << '\n';
}

// Trains the configured model on `train`, reporting per-epoch metrics on `watch` (validation or test).
template <int Dim>
cf::Embeddings<Dim> train_model(const CfTrainConfig& c, const cf::Ratings& train, const cf::Ratings& watch,
                                MetricsSink* sink, bool progress) {
  Progress bar("cf train " + *c.model + " dim " + std::to_string(Dim), static_cast<std::uint64_t>(*c.epochs),
               "epoch", Progress::Options{.enabled = progress});
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
    for (const auto& [k, v] : m) note += (note.empty() ? "" : " ") + k + " " + fmt(v);
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
  if (*c.model == "implicit")
    return cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                                 .reg = static_cast<float>(*c.reg),
                                 .alpha = static_cast<float>(*c.alpha),
                                 .weight_by_rating = *c.weight_by_rating,
                                 .cg_steps = *c.cg_steps,
                                 .init_std = static_cast<float>(*c.init_std),
                                 .seed = seed})
        .fit(train, on_epoch);
  fail<UsageError>("--model ", *c.model, ": expected als or implicit");
}

int run_train(std::span<const std::string> args) {
  const auto c = parse_flags<CfTrainConfig>(args);
  set_threads(*c.threads);
  const auto ml = load(*c.data, *c.progress);
  auto split =
      make_split(ml.ratings, *c.split, *c.test_fraction, *c.test_k, static_cast<std::uint64_t>(*c.seed));
  cf::Ratings train = split.train, watch = split.test;
  if (*c.validation_fraction > 0) {
    auto v = carve_validation(split.train, *c.validation_fraction, static_cast<std::uint64_t>(*c.seed));
    train = std::move(v.train);
    watch = std::move(v.test);
  }
  const std::filesystem::path out = *c.out;
  std::filesystem::create_directories(out);
  MetricsSink sink(out / "metrics.jsonl");
  nlohmann::json result;
  result["config"] = to_json(c);
  with_dim(*c.dim, [&](auto d) {
    constexpr int Dim = decltype(d)::value;
    auto e = train_model<Dim>(c, train, watch, &sink, *c.progress);
    e.user_ids = ml.users.ids();
    e.item_ids = ml.items.ids();
    e.metadata["config"] = to_json(c).dump();
    e.metadata["data"] = data_folder(*c.data).string();
    save_embeddings(e, out / "cf.safetensors");
    const auto m = evaluate(e, train, watch, *c.relevance, *c.model == "als");
    result[*c.validation_fraction > 0 ? "validation" : "test"] = m;
  });
  io::write_file_atomically(out / "config.json", to_json(c).dump(2) + "\n");
  if (*c.json) {
    std::cout << result.dump() << '\n';
  } else {
    for (const auto& [k, v] : result.items())
      if (k != "config") print_metrics(k, v.get<Metrics>());
    std::cout << "wrote " << (out / "cf.safetensors").string() << '\n';
  }
  return 0;
}

int run_eval(std::span<const std::string> args) {
  const auto c = parse_flags<CfEvalConfig>(args);
  set_threads(*c.threads);
  const std::filesystem::path path = *c.model;
  const int dim = cf::embeddings_dim(path);
  nlohmann::json result;
  with_dim(dim, [&](auto d) {
    constexpr int Dim = decltype(d)::value;
    const auto e = cf::load_embeddings<Dim>(path);
    const auto it = e.metadata.find("config");
    if (it == e.metadata.end()) fail<InvalidArgument>(path.string(), ": no training config in the metadata");
    auto t = from_json<CfTrainConfig>(nlohmann::json::parse(it->second));
    const std::string data = !c.data->empty()           ? *c.data
                             : e.metadata.count("data") ? e.metadata.at("data")
                                                        : *t.data;
    const auto ml = load(data, false);
    if (ml.users.ids() != e.user_ids || ml.items.ids() != e.item_ids)
      fail<InvalidArgument>(path.string(), ": its user/item ids do not match the data in ", data);
    const auto split =
        make_split(ml.ratings, *t.split, *t.test_fraction, *t.test_k, static_cast<std::uint64_t>(*t.seed));
    result["model"] = e.metadata.count("model") ? e.metadata.at("model") : "?";
    result["dim"] = Dim;
    result["test"] = {{result["model"].get<std::string>(),
                       evaluate(e, split.train, split.test, *t.relevance, *t.model == "als")}};
    if (*c.baselines) {
      result["test"]["global-mean"] =
          evaluate(cf::GlobalMean::fit(split.train), split.train, split.test, *t.relevance);
      result["test"]["bias-only"] =
          evaluate(cf::BiasOnly::fit(split.train), split.train, split.test, *t.relevance);
      result["test"]["popularity"] =
          evaluate(cf::Popularity::fit(split.train), split.train, split.test, *t.relevance);
    }
  });
  if (*c.json) {
    std::cout << result.dump() << '\n';
  } else {
    for (const auto& [name, m] : result["test"].items()) print_metrics(name, m.get<Metrics>());
  }
  return 0;
}

struct MeanStd {
  double mean, std;
};
MeanStd mean_std(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  const double mean = s / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

int run_compare(std::span<const std::string> args) {
  const auto c = parse_flags<CfCompareConfig>(args);
  set_threads(*c.threads);
  if (c.seeds->empty()) fail<UsageError>("--seeds: give at least one");
  const auto ml = load(*c.data, false);
  std::map<std::string, std::map<std::string, std::vector<double>>> all;  // method -> metric -> per seed
  const std::vector<std::string> order{"global-mean", "bias-only", "popularity", "als", "implicit-als"};
  for (const auto seed : *c.seeds) {
    const auto s = cf::holdout_split(ml.ratings, *c.test_fraction, static_cast<std::uint64_t>(seed));
    auto add = [&](const std::string& name, const Metrics& m) {
      for (const auto& [k, v] : m) all[name][k].push_back(v);
    };
    add("global-mean", evaluate(cf::GlobalMean::fit(s.train), s.train, s.test, *c.relevance));
    add("bias-only", evaluate(cf::BiasOnly::fit(s.train), s.train, s.test, *c.relevance));
    add("popularity", evaluate(cf::Popularity::fit(s.train), s.train, s.test, *c.relevance));
    with_dim(*c.dim, [&](auto d) {
      constexpr int Dim = decltype(d)::value;
      const auto model_seed = static_cast<std::uint64_t>(seed);
      add("als", evaluate(cf::ALS<Dim>({.epochs = *c.epochs,
                                        .reg = static_cast<float>(*c.reg),
                                        .reg_bias = static_cast<float>(*c.reg_bias),
                                        .seed = model_seed})
                              .fit(s.train),
                          s.train, s.test, *c.relevance));
      add("implicit-als", evaluate(cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                                                         .reg = static_cast<float>(*c.implicit_reg),
                                                         .alpha = static_cast<float>(*c.alpha),
                                                         .seed = model_seed})
                                       .fit(s.train),
                                   s.train, s.test, *c.relevance, false));
    });
    std::cerr << "cf compare: seed " << seed << " done\n";
  }
  const std::vector<std::string> columns{"rmse",      "mae",     "recall@10",  "ndcg@10",
                                         "recall@20", "ndcg@20", "coverage@10"};
  if (*c.json) {
    nlohmann::json j;
    for (const auto& [method, metrics] : all)
      for (const auto& [k, v] : metrics) {
        const auto ms = mean_std(v);
        j[method][k] = {{"mean", ms.mean}, {"std", ms.std}, {"values", v}};
      }
    std::cout << j.dump() << '\n';
    return 0;
  }
  std::cout << "| method |";
  for (const auto& col : columns) std::cout << ' ' << col << " |";
  std::cout << "\n|---|";
  for (std::size_t i = 0; i < columns.size(); ++i) std::cout << "---|";
  std::cout << '\n';
  for (const auto& method : order) {
    std::cout << "| " << method << " |";
    for (const auto& col : columns) {
      const auto it = all[method].find(col);
      if (it == all[method].end()) {
        std::cout << " n/a |";
        continue;
      }
      const auto ms = mean_std(it->second);
      std::cout << ' ' << fmt(ms.mean) << " ± " << fmt(ms.std) << " |";
    }
    std::cout << '\n';
  }
  return 0;
}

int run_tune(std::span<const std::string> args) {
  const auto c = parse_flags<CfTuneConfig>(args);
  set_threads(*c.threads);
  const auto ml = load(*c.data, false);
  const auto seed = static_cast<std::uint64_t>(*c.seed);
  const auto outer = cf::holdout_split(ml.ratings, *c.test_fraction, seed);
  const auto v = carve_validation(outer.train, *c.validation_fraction, seed);  // test is never used below
  const bool explicit_model = *c.model == "als";
  if (!explicit_model && *c.model != "implicit")
    fail<UsageError>("--model ", *c.model, ": expected als or implicit");
  nlohmann::json rows = nlohmann::json::array();
  // The baselines on the same validation split: what a setting has to beat.
  const nlohmann::json reference = {
      {"bias-only", evaluate(cf::BiasOnly::fit(v.train), v.train, v.test, *c.relevance)},
      {"popularity", evaluate(cf::Popularity::fit(v.train), v.train, v.test, *c.relevance)}};
  if (!*c.json)
    for (const auto& [name, m] : reference.items()) print_metrics("validation " + name, m.get<Metrics>());
  const std::string key = explicit_model ? "rmse" : "ndcg@10";
  double best = explicit_model ? 1e30 : -1.0;
  nlohmann::json best_row;
  for (int dim : *c.dims)
    for (double reg : *c.regs)
      for (double extra : explicit_model ? *c.reg_biases : *c.alphas) {
        const auto m = with_dim(dim, [&](auto d) {
          constexpr int Dim = decltype(d)::value;
          if (explicit_model)
            return evaluate(cf::ALS<Dim>({.epochs = *c.epochs,
                                          .reg = static_cast<float>(reg),
                                          .reg_bias = static_cast<float>(extra),
                                          .seed = seed})
                                .fit(v.train),
                            v.train, v.test, *c.relevance);
          return evaluate(cf::ImplicitALS<Dim>({.epochs = *c.epochs,
                                                .reg = static_cast<float>(reg),
                                                .alpha = static_cast<float>(extra),
                                                .seed = seed})
                              .fit(v.train),
                          v.train, v.test, *c.relevance, false);
        });
        nlohmann::json row = {
            {"dim", dim}, {"reg", reg}, {explicit_model ? "reg_bias" : "alpha", extra}, {"validation", m}};
        rows.push_back(row);
        const double score = m.at(key);
        if (explicit_model ? score < best : score > best) {
          best = score;
          best_row = row;
        }
        if (!*c.json) {
          std::cout << "dim " << dim << " reg " << reg << (explicit_model ? " reg_bias " : " alpha ")
                    << extra;
          for (const auto& k : {"rmse", "ndcg@10", "recall@10"})
            if (m.count(k)) std::cout << ' ' << k << ' ' << fmt(m.at(k));
          std::cout << std::endl;
        }
      }
  if (*c.json) {
    std::cout << nlohmann::json{{"grid", rows},
                                {"best", best_row},
                                {"criterion", key},
                                {"baselines", reference}}
                     .dump()
              << '\n';
  } else {
    std::cout << "best by validation " << key << ": " << best_row.dump() << '\n';
  }
  return 0;
}

const std::map<std::string, std::pair<std::function<int(std::span<const std::string>)>, std::string>>&
verbs() {
  static const std::map<std::string, std::pair<std::function<int(std::span<const std::string>)>, std::string>>
      table{{"train", {run_train, flags_help<CfTrainConfig>()}},
            {"eval", {run_eval, flags_help<CfEvalConfig>()}},
            {"compare", {run_compare, flags_help<CfCompareConfig>()}},
            {"tune", {run_tune, flags_help<CfTuneConfig>()}}};
  return table;
}

int run_cf(std::span<const std::string> args) {
  if (args.empty()) fail<UsageError>("expected a verb: train, eval, compare or tune (see p4lm cf --help)");
  const auto it = verbs().find(args[0]);
  if (it == verbs().end())
    fail<UsageError>("unknown verb '", args[0], "': expected train, eval, compare or tune");
  const auto rest = args.subspan(1);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << "usage: p4lm cf " << it->first << " [options]\n\n" << it->second.second;
    return 0;
  }
  return it->second.first(rest);
}

const Registration cf_registration{
    "cf", Command{"collaborative filtering on MovieLens: cf train | eval | compare | tune",
                  "verbs:\n  train    train ALS embeddings, write cf.safetensors\n"
                  "  eval     evaluate saved embeddings (and baselines) on their test split\n"
                  "  compare  every method on several seeds, mean +- std\n"
                  "  tune     hyperparameter grid on a validation split carved from train\n"
                  "see p4lm cf <verb> --help\n",
                  run_cf}};

}  // namespace
}  // namespace p4lm::cli
