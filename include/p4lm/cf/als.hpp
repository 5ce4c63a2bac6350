#pragma once
// Alternating least squares for explicit ratings with user and item biases:
//   r_ui ~ mu + b_u + b_i + p_u . q_i,
//   min sum_(u,i) (r_ui - mu - b_u - b_i - p_u.q_i)^2 + lambda sum_u n_u |p_u|^2 + lambda sum_i n_i |q_i|^2
//                                                    + lambda_b (sum_u b_u^2 + sum_i b_i^2).
// With items fixed, each user's [p_u; b_u] is the closed-form solution of a (Dim+1)-square ridge
// problem over the features [q_i; 1] and targets r_ui - mu - b_i (and the other way round for items).
// The n_u / n_i scaling is ALS-WR (Zhou et al., 2008); turn it off with weighted_reg = false.
// Users (then items) are solved in parallel with OpenMP (at most the machine's hardware threads,
// whatever the caller's OpenMP setting); each solve is BLAS ssyrk + LAPACK Cholesky. Initial factors
// come from p4lm::Rng (Philox), so a seed gives the same model on every platform. A run whose factors
// turn NaN or infinite stops with an error naming the epoch and the matrix.
//
//   p4lm::cf::ALS<32> als({.epochs = 15, .reg = 0.05f});
//   p4lm::cf::Embeddings<32> e = als.fit(split.train);

#include <cmath>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/cf/detail/blas.hpp"
#include "p4lm/cf/detail/parallel.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"

namespace p4lm::cf {

struct AlsOptions {
  int epochs = 15;
  float reg = 0.05f;         // lambda on the factors
  float reg_bias = 5.0f;     // lambda_b on the biases (not scaled by counts)
  bool weighted_reg = true;  // scale lambda by each user's / item's rating count (ALS-WR)
  bool biases = true;        // false: plain r_ui ~ p_u . q_i (no mean, no biases)
  float init_std = 0.1f;     // initial factors ~ N(0, init_std^2)
  std::uint64_t seed = 1;
};

namespace detail {

// Calls f(args...) and returns whether it asked to stop (a callback may return void or bool).
template <class F, class... Args>
bool call_stop(F& f, Args&&... args) {
  if constexpr (std::is_same_v<std::invoke_result_t<F&, Args...>, bool>)
    return f(std::forward<Args>(args)...);
  else {
    f(std::forward<Args>(args)...);
    return false;
  }
}

// Below this many ratings a half-epoch runs on one thread: waking a team costs more than it saves.
inline constexpr std::size_t parallel_min_ratings = 20000;

struct NoCallback {
  template <class... Args>
  void operator()(Args&&...) const noexcept {}
};

inline void init_factors(xt::xtensor<float, 2>& m, Rng& rng, float std_dev) {
  for (auto& v : m) v = static_cast<float>(std_dev * rng.normal());
}

// Options every solver shares: finite, and the ranges the math needs.
inline void check_common(const char* solver, int epochs, float reg, float init_std) {
  if (epochs < 0) fail<InvalidArgument>(solver, ": epochs must be >= 0, got ", epochs);
  if (!std::isfinite(reg) || reg < 0)
    fail<InvalidArgument>(solver, ": reg must be finite and >= 0, got ", reg);
  if (!std::isfinite(init_std) || init_std < 0)
    fail<InvalidArgument>(solver, ": init_std must be finite and >= 0, got ", init_std);
}

// Training needs something to train on; what a split leaves empty is refused here by name.
inline void check_trainable(const char* solver, const Ratings& train) {
  train.check();
  if (train.empty())
    fail<InvalidArgument>(solver, ": no ratings to train on (", train.n_users, " users, ", train.n_items,
                          " items)");
}

}  // namespace detail

// Scratch space of one solver thread.
struct AlsWorkspace {
  std::vector<float> features, targets, gram, rhs;
};

// The closed-form update of one user (or item): the ridge solution over the rated columns `cols` with
// the other side's factors `other` [n, Dim] as features (plus a constant 1 when `bias` is non-null)
// and the given targets. Writes `factors` (Dim values) and *bias. reg and reg_bias are the effective
// penalties (already scaled by the count if ALS-WR). InvalidArgument if the system is singular.
template <int Dim>
void als_solve_row(std::span<const Index> cols, std::span<const float> targets, const float* other, float reg,
                   float reg_bias, float* factors, float* bias, AlsWorkspace& ws) {
  const int k = Dim + (bias != nullptr ? 1 : 0);
  const std::size_t m = cols.size();
  if (m == 0) {  // nothing rated: the penalty alone pulls everything to zero
    std::fill(factors, factors + Dim, 0.0f);
    if (bias) *bias = 0.0f;
    return;
  }
  ws.features.resize(m * static_cast<std::size_t>(k));
  ws.gram.resize(static_cast<std::size_t>(k * k));
  ws.rhs.resize(static_cast<std::size_t>(k));
  for (std::size_t j = 0; j < m; ++j) {
    float* row = ws.features.data() + j * static_cast<std::size_t>(k);
    const float* src = other + static_cast<std::size_t>(cols[j]) * Dim;
    std::copy(src, src + Dim, row);
    if (bias) row[Dim] = 1.0f;
  }
  // gram = F^T F (upper triangle), rhs = F^T t.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, static_cast<int>(m), 1.0f, ws.features.data(), k,
              0.0f, ws.gram.data(), k);
  cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(m), k, 1.0f, ws.features.data(), k, targets.data(),
              1, 0.0f, ws.rhs.data(), 1);
  for (int d = 0; d < Dim; ++d) ws.gram[static_cast<std::size_t>(d * k + d)] += reg;
  if (bias) ws.gram[static_cast<std::size_t>(Dim * k + Dim)] += reg_bias;
  if (!detail::cholesky_solve(ws.gram.data(), ws.rhs.data(), k))
    fail<InvalidArgument>("ALS: a ", k, "x", k, " normal-equation system is singular (", m,
                          " ratings); use a positive reg / reg_bias");
  std::copy(ws.rhs.begin(), ws.rhs.begin() + Dim, factors);
  if (bias) *bias = ws.rhs[Dim];
}

template <int Dim>
class ALS {
 public:
  static constexpr int dim = Dim;
  explicit ALS(AlsOptions options = {}) : options_(options) {
    detail::check_common("ALS", options_.epochs, options_.reg, options_.init_std);
    if (!std::isfinite(options_.reg_bias) || options_.reg_bias < 0)
      fail<InvalidArgument>("ALS: reg_bias must be finite and >= 0, got ", options_.reg_bias);
  }
  const AlsOptions& options() const noexcept { return options_; }

  // Trains on train; on_epoch(epoch (1-based), const Embeddings<Dim>&) runs after every epoch and may
  // return true to stop early.
  template <class OnEpoch = detail::NoCallback>
  Embeddings<Dim> fit(const Ratings& train, OnEpoch&& on_epoch = {}) const {
    detail::check_trainable("ALS", train);
    Embeddings<Dim> e(train.n_users, train.n_items);
    Rng rng(options_.seed);
    detail::init_factors(e.users, rng, options_.init_std);
    detail::init_factors(e.items, rng, options_.init_std);
    e.global_mean = options_.biases ? static_cast<float>(train.mean()) : 0.0f;
    e.metadata["model"] = "als";
    const Csr users = by_user(train), items = by_item(train);
    backend::cpu_blas::BlasSingleThreaded single(true);
    for (int epoch = 1; epoch <= options_.epochs; ++epoch) {
      half_step(users, e.global_mean, e.items, e.item_bias, e.users, e.user_bias);
      detail::require_finite_factors(e.users, "ALS", epoch, "user factors");
      detail::require_finite_factors(e.user_bias, "ALS", epoch, "user biases");
      half_step(items, e.global_mean, e.users, e.user_bias, e.items, e.item_bias);
      detail::require_finite_factors(e.items, "ALS", epoch, "item factors");
      detail::require_finite_factors(e.item_bias, "ALS", epoch, "item biases");
      if (detail::call_stop(on_epoch, epoch, std::as_const(e))) break;
    }
    return e;
  }

  // One half-epoch: every row of `rows` (users or items) solved against the other side, fixed.
  void half_step(const Csr& rows, float mean, const xt::xtensor<float, 2>& other,
                 const xt::xtensor<float, 1>& other_bias, xt::xtensor<float, 2>& own,
                 xt::xtensor<float, 1>& own_bias) const {
    const auto n = static_cast<std::int64_t>(rows.rows());
    const bool biases = options_.biases;
    bool failed = false;
    std::string message;
#pragma omp parallel num_threads(detail::team_size()) if (rows.cols.size() >= detail::parallel_min_ratings)
    {
      AlsWorkspace ws;
      std::vector<float> targets;
#pragma omp for schedule(dynamic, 32)
      for (std::int64_t r = 0; r < n; ++r) {
        const auto row = static_cast<std::size_t>(r);
        const auto cols = rows.cols_of(row);
        const auto values = rows.values_of(row);
        targets.resize(cols.size());
        for (std::size_t j = 0; j < cols.size(); ++j)
          targets[j] = biases ? values[j] - mean - other_bias(static_cast<std::size_t>(cols[j])) : values[j];
        const float scale = options_.weighted_reg ? static_cast<float>(cols.size()) : 1.0f;
        try {
          als_solve_row<Dim>(cols, targets, other.data(), options_.reg * scale, options_.reg_bias,
                             own.data() + row * Dim, biases ? &own_bias(row) : nullptr, ws);
        } catch (const std::exception& ex) {  // exceptions must not leave an OpenMP region
#pragma omp critical(p4lm_als_error)
          {
            failed = true;
            message = ex.what();
          }
        }
      }
    }
    if (failed) fail<InvalidArgument>(message);
  }

 private:
  AlsOptions options_;
};

}  // namespace p4lm::cf
