#pragma once
// Implicit-feedback ALS (Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback
// Datasets", ICDM 2008): every rated (u, i) is a positive preference p_ui = 1 with confidence
// c_ui = 1 + alpha * s_ui (s_ui = 1, or the rating when weight_by_rating), every other pair p_ui = 0
// with confidence 1:
//   min sum_(u,i all) c_ui (p_ui - x_u . y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2).
// Each user's system (Y^T Y + Y^T (C_u - I) Y + lambda I) x_u = Y^T C_u p_u is solved by a few
// conjugate-gradient steps warm-started from the previous x_u (Takacs, Pilaszy and Tikk, 2011), so
// the cost is O(nnz Dim + users Dim^2) per epoch instead of a Dim^3 solve per user.
// The result has no biases and global mean 0: scores rank items, they are not ratings.

#include <cmath>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/cf/als.hpp"
#include "p4lm/cf/detail/blas.hpp"
#include "p4lm/cf/detail/parallel.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::cf {

struct ImplicitAlsOptions {
  int epochs = 15;
  float reg = 0.1f;               // lambda
  float alpha = 10.0f;            // confidence slope
  bool weight_by_rating = false;  // s_ui = rating instead of 1
  float min_rating = 0.0f;        // ratings below count as unobserved
  int cg_steps = 3;
  float init_std = 0.01f;
  std::uint64_t seed = 1;
};

// Conjugate-gradient update of one row x (Dim values, warm start) given the other side's Gram matrix
// gram = Y^T Y [Dim, Dim] (full), the row's columns and confidences c (> 0).
template <int Dim>
void implicit_solve_row(const float* gram, std::span<const Index> cols, std::span<const float> confidence,
                        const float* other, float reg, int steps, float* x) {
  float r[Dim], p[Dim], ap[Dim];
  // ap = A x, with A = gram + sum_j (c_j - 1) y_j y_j^T + reg I; b = sum_j c_j y_j.
  auto multiply = [&](const float* v, float* out) {
    for (int a = 0; a < Dim; ++a) {
      float s = reg * v[a];
      const float* g = gram + a * Dim;
      for (int b = 0; b < Dim; ++b) s += g[b] * v[b];
      out[a] = s;
    }
    for (std::size_t j = 0; j < cols.size(); ++j) {
      const float* y = other + static_cast<std::size_t>(cols[j]) * Dim;
      float dot = 0.0f;
      for (int a = 0; a < Dim; ++a) dot += y[a] * v[a];
      const float w = (confidence[j] - 1.0f) * dot;
      for (int a = 0; a < Dim; ++a) out[a] += w * y[a];
    }
  };
  multiply(x, ap);
  for (int a = 0; a < Dim; ++a) r[a] = -ap[a];
  for (std::size_t j = 0; j < cols.size(); ++j) {
    const float* y = other + static_cast<std::size_t>(cols[j]) * Dim;
    for (int a = 0; a < Dim; ++a) r[a] += confidence[j] * y[a];
  }
  float rs_old = 0.0f;
  for (int a = 0; a < Dim; ++a) {
    p[a] = r[a];
    rs_old += r[a] * r[a];
  }
  for (int step = 0; step < steps && rs_old > 1e-20f; ++step) {
    multiply(p, ap);
    float p_ap = 0.0f;
    for (int a = 0; a < Dim; ++a) p_ap += p[a] * ap[a];
    const float step_size = rs_old / p_ap;
    float rs_new = 0.0f;
    for (int a = 0; a < Dim; ++a) {
      x[a] += step_size * p[a];
      r[a] -= step_size * ap[a];
      rs_new += r[a] * r[a];
    }
    for (int a = 0; a < Dim; ++a) p[a] = r[a] + (rs_new / rs_old) * p[a];
    rs_old = rs_new;
  }
}

template <int Dim>
class ImplicitALS {
 public:
  static constexpr int dim = Dim;
  explicit ImplicitALS(ImplicitAlsOptions options = {}) : options_(options) {
    detail::check_common("ImplicitALS", options_.epochs, options_.reg, options_.init_std);
    if (options_.cg_steps < 1)
      fail<InvalidArgument>("ImplicitALS: cg_steps must be >= 1, got ", options_.cg_steps);
    if (!(options_.reg > 0.0f)) fail<InvalidArgument>("ImplicitALS: reg must be > 0, got ", options_.reg);
    if (!std::isfinite(options_.alpha) || options_.alpha < 0.0f)
      fail<InvalidArgument>("ImplicitALS: alpha must be finite and >= 0, got ", options_.alpha);
  }
  const ImplicitAlsOptions& options() const noexcept { return options_; }

  template <class OnEpoch = detail::NoCallback>
  Embeddings<Dim> fit(const Ratings& train, OnEpoch&& on_epoch = {}) const {
    detail::check_trainable("ImplicitALS", train);
    Ratings positives;
    positives.n_users = train.n_users;
    positives.n_items = train.n_items;
    positives.reserve(train.size());
    for (std::size_t k = 0; k < train.size(); ++k) {
      if (train.rating[k] < options_.min_rating) continue;
      const float s = options_.weight_by_rating ? train.rating[k] : 1.0f;
      const float confidence = 1.0f + options_.alpha * s;
      if (!std::isfinite(confidence))
        fail<InvalidArgument>("ImplicitALS: confidence 1 + alpha * s overflows float for rating ", k,
                              " (alpha ", options_.alpha, ", s ", s, ")");
      positives.add(train.user[k], train.item[k], confidence);
    }
    Embeddings<Dim> e(train.n_users, train.n_items);
    Rng rng(options_.seed);
    detail::init_factors(e.users, rng, options_.init_std);
    detail::init_factors(e.items, rng, options_.init_std);
    e.metadata["model"] = "implicit-als";
    const Csr users = by_user(positives), items = by_item(positives);
    backend::cpu_blas::BlasSingleThreaded single(true);
    for (int epoch = 1; epoch <= options_.epochs; ++epoch) {
      half_step(users, e.items, e.users);
      detail::require_finite_factors(e.users, "ImplicitALS", epoch, "user factors");
      half_step(items, e.users, e.items);
      detail::require_finite_factors(e.items, "ImplicitALS", epoch, "item factors");
      if (detail::call_stop(on_epoch, epoch, std::as_const(e))) break;
    }
    return e;
  }

  void half_step(const Csr& rows, const xt::xtensor<float, 2>& other, xt::xtensor<float, 2>& own) const {
    std::vector<float> gram(static_cast<std::size_t>(Dim * Dim));
    const auto n_other = static_cast<int>(other.shape()[0]);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Dim, n_other, 1.0f, other.data(), Dim, 0.0f,
                gram.data(), Dim);
    for (int a = 0; a < Dim; ++a)
      for (int b = 0; b < a; ++b)
        gram[static_cast<std::size_t>(a * Dim + b)] = gram[static_cast<std::size_t>(b * Dim + a)];
    const auto n = static_cast<std::int64_t>(rows.rows());
#pragma omp parallel for num_threads(detail::team_size()) \
    schedule(dynamic, 64) if (rows.cols.size() >= detail::parallel_min_ratings)
    for (std::int64_t r = 0; r < n; ++r) {
      const auto row = static_cast<std::size_t>(r);
      float* x = own.data() + row * Dim;
      if (rows.row_size(row) == 0) {
        std::fill(x, x + Dim, 0.0f);
        continue;
      }
      implicit_solve_row<Dim>(gram.data(), rows.cols_of(row), rows.values_of(row), other.data(), options_.reg,
                              options_.cg_steps, x);
    }
  }

 private:
  ImplicitAlsOptions options_;
};

}  // namespace p4lm::cf
