#pragma once
// Agreement between the learned rewards and the gold judge: Spearman's rank correlation per
// (reward, gold dimension) pair over a set of pitches, with a seeded percentile-bootstrap interval.
// It answers "does a higher reward mean a better pitch by the judge's measure?", the question a user
// asks before trusting a reward as an RL objective. docs/rewards.md ("Agreement") has the measured table.
//
//   auto rho = p4lm::eval::spearman(rewards, gold);           // rho.value, or rho.undefined (the reason)
//   auto ci = p4lm::eval::bootstrap_spearman(rewards, gold, {.resamples = 2000, .seed = 1});
//   auto rows = p4lm::eval::agreement_rows("teacher test", reward_columns, gold_columns, {});
//   std::cout << p4lm::eval::format_agreement(rows, {});
//
// Spearman's rho is Pearson's correlation of the average ranks (ties share the mean of the ranks they
// span), as scipy.stats.spearmanr computes it. A column with one value throughout has no ranks to
// correlate: the correlation is undefined and says why, never NaN.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"

namespace p4lm::eval {

// Ranks 1..n of x; tied values all get the mean of the ranks they span.
inline std::vector<double> average_ranks(std::span<const double> x) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (std::size_t k = i; k < j; ++k) ranks[order[k]] = mean_rank;
    i = j;
  }
  return ranks;
}

// A correlation, or why there is none.
struct Correlation {
  std::optional<double> value;
  std::string undefined;  // the reason when value is empty
};

namespace detail {
// Pearson's correlation; empty when a column is constant.
inline std::optional<double> pearson(std::span<const double> a, std::span<const double> b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  if (saa == 0 || sbb == 0) return std::nullopt;
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

inline void check_columns(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size())
    fail<InvalidArgument>("spearman: columns of ", x.size(), " and ", y.size(), " values");
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]) || !std::isfinite(y[i]))
      fail<InvalidArgument>("spearman: value ", i, " is not a finite number");
}

inline bool constant(std::span<const double> x) {
  return std::adjacent_find(x.begin(), x.end(), std::not_equal_to<>()) == x.end();
}
}  // namespace detail

// Spearman's rank correlation of x and y (same length, finite values). Undefined for fewer than two
// pairs or a constant column; `undefined` then says which, by the names given.
inline Correlation spearman(std::span<const double> x, std::span<const double> y,
                            const std::string& x_name = "x", const std::string& y_name = "y") {
  detail::check_columns(x, y);
  if (x.size() < 2) return {std::nullopt, "fewer than 2 pitches"};
  if (detail::constant(x)) return {std::nullopt, x_name + " is constant"};
  if (detail::constant(y)) return {std::nullopt, y_name + " is constant"};
  return {detail::pearson(average_ranks(x), average_ranks(y)), {}};
}

struct BootstrapOptions {
  std::size_t resamples = 2000;
  std::uint64_t seed = 1;
  double level = 0.95;  // central coverage of the interval
};

struct Interval {
  double low = 0, high = 0;
  std::size_t resamples = 0;  // resamples with a defined correlation (a constant resample has none)
};

// The stream every agreement bootstrap draws from.
inline constexpr std::uint64_t bootstrap_rng_stream = 0xb0075ULL;

// Percentile bootstrap interval of spearman(x, y): `resamples` samples of the n pairs with
// replacement, each drawn from Rng(seed, bootstrap_rng_stream), so the same seed gives the same
// interval and every column pair of one set sees the same resamples. Quantiles interpolate linearly
// between order statistics (numpy's default). Empty when no resample has a defined correlation.
inline std::optional<Interval> bootstrap_spearman(std::span<const double> x, std::span<const double> y,
                                                  const BootstrapOptions& o = {}) {
  detail::check_columns(x, y);
  if (!(o.level > 0 && o.level < 1)) fail<InvalidArgument>("bootstrap: level must be in (0, 1)");
  if (x.size() < 2 || o.resamples == 0) return std::nullopt;
  Rng rng(o.seed, bootstrap_rng_stream);
  std::vector<double> rhos, bx(x.size()), by(y.size());
  rhos.reserve(o.resamples);
  for (std::size_t r = 0; r < o.resamples; ++r) {
    for (std::size_t i = 0; i < x.size(); ++i) {
      const auto k = static_cast<std::size_t>(rng.below(x.size()));
      bx[i] = x[k], by[i] = y[k];
    }
    if (const auto c = detail::pearson(average_ranks(bx), average_ranks(by))) rhos.push_back(*c);
  }
  if (rhos.empty()) return std::nullopt;
  std::sort(rhos.begin(), rhos.end());
  const auto quantile = [&](double q) {
    const double pos = q * static_cast<double>(rhos.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, rhos.size() - 1);
    return rhos[lo] + (pos - static_cast<double>(lo)) * (rhos[hi] - rhos[lo]);
  };
  const double tail = (1 - o.level) / 2;
  return Interval{quantile(tail), quantile(1 - tail), rhos.size()};
}

// Which gold dimension each learned reward should track. The judge has no appeal dimension; fluency
// (known words, no repeated n-grams, a sensible length) is the nearest thing it measures.
struct AgreementPair {
  std::string reward, gold;
};
inline std::vector<AgreementPair> reward_gold_pairs() {
  return {{"precision", "gold/precision"},
          {"appeal", "gold/fluency"},
          {"personalization", "gold/personalization"},
          {"preference_relevance", "gold/personalization"}};
}

// One line of the table: a reward against a gold dimension over one set of pitches.
struct AgreementRow {
  std::string set, reward, gold;
  std::size_t n = 0;
  Correlation rho;
  std::optional<Interval> ci;
};

// The rows of one set: `rewards` and `gold` map column names to one value per pitch (same order).
// A pair whose columns are absent is left out (e.g. a reward not evaluated).
inline std::vector<AgreementRow> agreement_rows(
    const std::string& set, const std::map<std::string, std::vector<double>>& rewards,
    const std::map<std::string, std::vector<double>>& gold, const BootstrapOptions& o,
    const std::vector<AgreementPair>& pairs = reward_gold_pairs()) {
  std::vector<AgreementRow> rows;
  for (const auto& p : pairs) {
    const auto r = rewards.find(p.reward);
    const auto g = gold.find(p.gold);
    if (r == rewards.end() || g == gold.end()) continue;
    AgreementRow row{
        set,         p.reward, p.gold, r->second.size(), spearman(r->second, g->second, p.reward, p.gold),
        std::nullopt};
    if (row.rho.value) row.ci = bootstrap_spearman(r->second, g->second, o);
    rows.push_back(std::move(row));
  }
  return rows;
}

inline nlohmann::json agreement_json(const std::vector<AgreementRow>& rows, const BootstrapOptions& o) {
  nlohmann::json j{{"statistic", "spearman"}, {"interval", "percentile bootstrap"},
                   {"level", o.level},        {"resamples", o.resamples},
                   {"seed", o.seed},          {"rows", nlohmann::json::array()}};
  for (const auto& r : rows) {
    nlohmann::json row{{"set", r.set}, {"reward", r.reward}, {"gold", r.gold}, {"n", r.n}};
    if (r.rho.value) {
      row["rho"] = *r.rho.value;
    } else {
      row["rho"] = nullptr;
      row["undefined"] = r.rho.undefined;
    }
    if (r.ci) row["ci"] = {r.ci->low, r.ci->high}, row["ci_resamples"] = r.ci->resamples;
    j["rows"].push_back(std::move(row));
  }
  return j;
}

// The table as text, one row per line: set, n, reward, gold dimension, rho, interval.
inline std::string format_agreement(const std::vector<AgreementRow>& rows, const BootstrapOptions& o) {
  std::ostringstream os;
  os << "agreement with the gold judge: Spearman rho, " << std::lround(o.level * 100)
     << "% percentile bootstrap (" << o.resamples << " resamples, seed " << o.seed << ")\n";
  os << std::left << std::setw(16) << "set" << std::right << std::setw(6) << "n"
     << "  " << std::left << std::setw(22) << "reward" << std::setw(22) << "gold" << std::right
     << std::setw(7) << "rho"
     << "  interval\n";
  for (const auto& r : rows) {
    os << std::left << std::setw(16) << r.set << std::right << std::setw(6) << r.n << "  " << std::left
       << std::setw(22) << r.reward << std::setw(22) << r.gold << std::right << std::fixed
       << std::setprecision(3);
    if (!r.rho.value) {
      os << std::setw(7) << "n/a"
         << "  (" << r.rho.undefined << ")\n";
      continue;
    }
    os << std::setw(7) << *r.rho.value << "  ";
    if (r.ci)
      os << '[' << r.ci->low << ", " << r.ci->high << ']';
    else
      os << "n/a (no resample has a defined correlation)";
    os << '\n';
  }
  return os.str();
}

}  // namespace p4lm::eval
