#pragma once
// The three objectives the shared Trainer trains reward heads with (train/concepts.hpp: batch(step,
// micro) and loss(model, batch)), over precomputed feature rows:
//   BradleyTerryObjective   -log σ(r(chosen) - r(rejected))     Appeal
//   SentenceBradleyTerryObjective  the same, r a log-sum-exp over each pitch's sentence rows
//                                                                Personalization
//   NliObjective            logistic loss on the entailment logit  (one feature row per example)
//   TokenNliObjective       the same over ragged token rows        Precision
//   RegressionObjective     mean squared error to a vector target  PreferenceRelevance
// The losses are ops/losses.hpp's. Example order: a seeded shuffle per epoch, a pure function of the
// step (what resuming from a checkpoint needs).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor_view.hpp"
#include "p4lm/ops/losses.hpp"
#include "p4lm/reward/head.hpp"
#include "p4lm/reward/token_alignment.hpp"
#include "p4lm/train/concepts.hpp"

namespace p4lm::reward {

// Which examples step g uses: positions g·B .. g·B+B-1 of an endless sequence of seeded epoch shuffles.
class ExampleOrder {
 public:
  ExampleOrder(std::size_t n, std::size_t batch, std::uint64_t seed) : n_(n), batch_(batch), seed_(seed) {
    if (n == 0) fail<InvalidArgument>("reward training: no examples");
    if (batch == 0) fail<InvalidArgument>("reward training: batch size must be positive");
  }
  std::vector<std::size_t> rows(std::size_t step) {
    std::vector<std::size_t> out;
    for (std::size_t j = 0; j < batch_; ++j) {
      const std::size_t p = step * batch_ + j, epoch = p / n_;
      if (epoch != epoch_ || perm_.empty()) shuffle(epoch);
      out.push_back(perm_[p % n_]);
    }
    return out;
  }

 private:
  void shuffle(std::size_t epoch) {
    perm_.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) perm_[i] = i;
    Rng rng(seed_, 0xe90c + epoch);
    for (std::size_t k = n_; k > 1; --k)
      std::swap(perm_[k - 1], perm_[static_cast<std::size_t>(rng.below(k))]);
    epoch_ = epoch;
  }
  std::size_t n_, batch_;
  std::uint64_t seed_;
  std::size_t epoch_ = 0;
  std::vector<std::size_t> perm_;
};

template <class T>
std::vector<T> gather_rows(const std::vector<T>& x, std::size_t width, const std::vector<std::size_t>& rows) {
  std::vector<T> out(rows.size() * width);
  for (std::size_t r = 0; r < rows.size(); ++r)
    std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(rows[r] * width), width,
                out.begin() + static_cast<std::ptrdiff_t>(r * width));
  return out;
}

template <class T>
TensorView<backend::cpu, T> view(std::vector<T>& v, std::size_t offset, std::size_t n) {
  return TensorView<backend::cpu, T>(v.data() + offset, Shape{n});
}

// chosen/rejected: (n, width) feature rows of the winning and losing side of each pair.
template <class T = float>
class BradleyTerryObjective {
 public:
  struct Batch {
    std::vector<std::size_t> rows;
  };
  BradleyTerryObjective(std::vector<T> chosen, std::vector<T> rejected, std::size_t width, std::size_t batch,
                        std::uint64_t seed = 1)
      : w_(std::move(chosen)),
        l_(std::move(rejected)),
        width_(width),
        order_(w_.size() / width, batch, seed) {}
  Batch batch(std::size_t step, std::size_t /*micro*/) { return {order_.rows(step)}; }
  train::StepLoss loss(MlpHead<T>& head, const Batch& b) {
    const std::size_t n = b.rows.size();
    auto x = gather_rows(w_, width_, b.rows);
    const auto xl = gather_rows(l_, width_, b.rows);
    x.insert(x.end(), xl.begin(), xl.end());
    auto y = head.forward(x.data(), 2 * n);
    std::vector<T> dy(2 * n, T(0));
    const double loss = ops::bradley_terry_forward(view(y, 0, n), view(y, n, n));
    ops::bradley_terry_backward(view(dy, 0, n), view(dy, n, n), view(y, 0, n), view(y, n, n));
    head.backward(dy.data());
    return {loss, n};
  }

 private:
  std::vector<T> w_, l_;
  std::size_t width_;
  ExampleOrder order_;
};

// x: (n, width) features, labels: 1 entailment, 0 contradiction.
template <class T = float>
class NliObjective {
 public:
  struct Batch {
    std::vector<std::size_t> rows;
  };
  NliObjective(std::vector<T> x, std::vector<T> labels, std::size_t width, std::size_t batch,
               std::uint64_t seed = 1)
      : x_(std::move(x)), y_(std::move(labels)), width_(width), order_(y_.size(), batch, seed) {}
  Batch batch(std::size_t step, std::size_t /*micro*/) { return {order_.rows(step)}; }
  train::StepLoss loss(MlpHead<T>& head, const Batch& b) {
    const std::size_t n = b.rows.size();
    const auto x = gather_rows(x_, width_, b.rows);
    auto labels = gather_rows(y_, 1, b.rows);
    auto z = head.forward(x.data(), n);
    std::vector<T> dz(n, T(0));
    const double loss = ops::bce_with_logits_forward(view(z, 0, n), view(labels, 0, n));
    ops::bce_with_logits_backward(view(dz, 0, n), view(z, 0, n), view(labels, 0, n));
    head.backward(dz.data());
    return {loss, n};
  }

 private:
  std::vector<T> x_, y_;
  std::size_t width_;
  ExampleOrder order_;
};

// Bradley-Terry over ragged rows: pair i's chosen pitch owns rows chosen_offsets[i] ..
// chosen_offsets[i+1]-1 of chosen (one row per sentence), likewise rejected; each pitch's score is
// log_sum_exp_groups of its rows' head outputs. Personalization's objective.
template <class T = float>
class SentenceBradleyTerryObjective {
 public:
  struct Batch {
    std::vector<std::size_t> rows;
  };
  SentenceBradleyTerryObjective(std::vector<T> chosen, std::vector<std::size_t> chosen_offsets,
                                std::vector<T> rejected, std::vector<std::size_t> rejected_offsets,
                                std::size_t width, std::size_t batch, std::uint64_t seed = 1)
      : x_{std::move(chosen), std::move(rejected)},
        offsets_{std::move(chosen_offsets), std::move(rejected_offsets)},
        width_(width),
        order_(offsets_[0].empty() ? 0 : offsets_[0].size() - 1, batch, seed) {
    for (std::size_t s = 0; s < 2; ++s)
      if (offsets_[s].size() != offsets_[0].size() || offsets_[s].empty() ||
          offsets_[s].back() * width_ != x_[s].size())
        fail<InvalidArgument>("SentenceBradleyTerryObjective: ", s ? "rejected" : "chosen", " side has ",
                              offsets_[s].size(), " offsets and ", x_[s].size(), " numbers of ", width_,
                              "-wide rows, for ", offsets_[0].size() - 1, " pairs");
  }
  Batch batch(std::size_t step, std::size_t /*micro*/) { return {order_.rows(step)}; }
  train::StepLoss loss(MlpHead<T>& head, const Batch& b) {
    const std::size_t n = b.rows.size();
    std::vector<T> x;
    std::vector<std::size_t> offsets{0};
    for (std::size_t s = 0; s < 2; ++s)  // chosen pitches, then rejected ones
      for (const auto i : b.rows) {
        const auto& o = offsets_[s];
        x.insert(x.end(), x_[s].begin() + long(o[i] * width_), x_[s].begin() + long(o[i + 1] * width_));
        offsets.push_back(offsets.back() + o[i + 1] - o[i]);
      }
    const auto c = head.forward(x.data(), offsets.back());
    auto r = log_sum_exp_groups(c, offsets);
    std::vector<T> dr(2 * n, T(0));
    const double loss = ops::bradley_terry_forward(view(r, 0, n), view(r, n, n));
    ops::bradley_terry_backward(view(dr, 0, n), view(dr, n, n), view(r, 0, n), view(r, n, n));
    head.backward(log_sum_exp_groups_backward(dr, c, r, offsets).data());
    return {loss, n};
  }

 private:
  std::array<std::vector<T>, 2> x_;
  std::array<std::vector<std::size_t>, 2> offsets_;
  std::size_t width_;
  ExampleOrder order_;
};

// Ragged token rows: example i owns rows offsets[i] .. offsets[i+1]-1 of x (n_rows, width); the head
// scores each row and the example's entailment logit is soft_min_logits of its rows' scores.
// labels: 1 entailment, 0 contradiction. Precision's objective (token_alignment.hpp).
template <class T = float>
class TokenNliObjective {
 public:
  struct Batch {
    std::vector<std::size_t> rows;
  };
  TokenNliObjective(std::vector<T> x, std::vector<std::size_t> offsets, std::vector<T> labels,
                    std::size_t width, std::size_t batch, std::uint64_t seed = 1)
      : x_(std::move(x)),
        offsets_(std::move(offsets)),
        y_(std::move(labels)),
        width_(width),
        order_(y_.size(), batch, seed) {
    if (offsets_.size() != y_.size() + 1 || offsets_.back() * width_ != x_.size())
      fail<InvalidArgument>("TokenNliObjective: ", y_.size(), " labels, ", offsets_.size(), " offsets, ",
                            x_.size(), " numbers of ", width_, "-wide rows");
  }
  Batch batch(std::size_t step, std::size_t /*micro*/) { return {order_.rows(step)}; }
  train::StepLoss loss(MlpHead<T>& head, const Batch& b) {
    const std::size_t n = b.rows.size();
    std::vector<T> x;
    std::vector<std::size_t> offsets{0};
    for (const auto i : b.rows) {
      x.insert(x.end(), x_.begin() + long(offsets_[i] * width_), x_.begin() + long(offsets_[i + 1] * width_));
      offsets.push_back(offsets.back() + offsets_[i + 1] - offsets_[i]);
    }
    auto labels = gather_rows(y_, 1, b.rows);
    const auto c = head.forward(x.data(), offsets.back());
    auto z = soft_min_logits(c, offsets);
    std::vector<T> dz(n, T(0));
    const double loss = ops::bce_with_logits_forward(view(z, 0, n), view(labels, 0, n));
    ops::bce_with_logits_backward(view(dz, 0, n), view(z, 0, n), view(labels, 0, n));
    head.backward(soft_min_logits_backward(dz, c, z, offsets).data());
    return {loss, n};
  }

 private:
  std::vector<T> x_;
  std::vector<std::size_t> offsets_;
  std::vector<T> y_;
  std::size_t width_;
  ExampleOrder order_;
};

// x: (n, width) features, targets: (n, out) vectors.
template <class T = float>
class RegressionObjective {
 public:
  struct Batch {
    std::vector<std::size_t> rows;
  };
  RegressionObjective(std::vector<T> x, std::vector<T> targets, std::size_t width, std::size_t out,
                      std::size_t batch, std::uint64_t seed = 1)
      : x_(std::move(x)),
        t_(std::move(targets)),
        width_(width),
        out_(out),
        order_(t_.size() / out, batch, seed) {}
  Batch batch(std::size_t step, std::size_t /*micro*/) { return {order_.rows(step)}; }
  train::StepLoss loss(MlpHead<T>& head, const Batch& b) {
    const std::size_t n = b.rows.size();
    const auto x = gather_rows(x_, width_, b.rows);
    auto t = gather_rows(t_, out_, b.rows);
    auto y = head.forward(x.data(), n);
    std::vector<T> dy(n * out_, T(0));
    const double loss = ops::mse_forward(view(y, 0, n * out_), view(t, 0, n * out_));
    ops::mse_backward(view(dy, 0, n * out_), view(y, 0, n * out_), view(t, 0, n * out_));
    head.backward(dy.data());
    return {loss, n};
  }

 private:
  std::vector<T> x_, t_;
  std::size_t width_, out_;
  ExampleOrder order_;
};

}  // namespace p4lm::reward
