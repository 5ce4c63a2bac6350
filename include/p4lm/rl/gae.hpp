#pragma once
// Generalized advantage estimation (Schulman et al. 2016) over per-token rewards.
//
//   δ_t = r_t + γ V_{t+1} - V_t          (V past a sequence's last token is 0: the episode ended)
//   A_t = δ_t + γ λ A_{t+1}               returns_t = A_t + V_t (the value head's regression target)
//
// One row per sequence, R positions, mask 1 on the tokens the policy generated and 0 on the padding
// after them (a row's mask must be a run of ones then zeros: the episode is the prefix of the row).
// Padding gets advantage and return 0.

#include <cstddef>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/masked.hpp"

namespace p4lm::rl {

// rewards, values, mask (B, R) -> advantages, returns (B, R).
template <class T>
void gae(TokenView<T> advantages, TokenView<T> returns, const TokenView<T>& rewards,
         const TokenView<T>& values, const TokenView<T>& mask, double gamma, double lam) {
  if (rewards.rank() != 2) fail<ShapeError>("gae: rewards: expected (B, R), got ", rewards.shape());
  expect_shape("gae: values", values.shape(), rewards.shape());
  expect_shape("gae: mask", mask.shape(), rewards.shape());
  expect_shape("gae: advantages", advantages.shape(), rewards.shape());
  expect_shape("gae: returns", returns.shape(), rewards.shape());
  if (!(gamma >= 0 && gamma <= 1) || !(lam >= 0 && lam <= 1))
    fail<InvalidArgument>("gae: gamma ", gamma, " and lam ", lam, " must lie in [0, 1]");
  const std::size_t B = rewards.dim(0), R = rewards.dim(1);
  for (std::size_t b = 0; b < B; ++b) {
    const T* m = mask.data() + b * R;
    std::size_t len = 0;
    while (len < R && m[len] > T(0)) ++len;
    for (std::size_t t = len; t < R; ++t)
      if (m[t] > T(0))
        fail<InvalidArgument>("gae: mask row ", b, " has a token at ", t, " after padding at ", len,
                              " (a row must be its tokens, then padding)");
    const T* r = rewards.data() + b * R;
    const T* v = values.data() + b * R;
    T* a = advantages.data() + b * R;
    T* ret = returns.data() + b * R;
    double next_value = 0, next_adv = 0;
    for (std::size_t t = len; t-- > 0;) {
      const double delta = static_cast<double>(r[t]) + gamma * next_value - static_cast<double>(v[t]);
      next_adv = delta + gamma * lam * next_adv;
      next_value = static_cast<double>(v[t]);
      a[t] = static_cast<T>(next_adv);
      ret[t] = static_cast<T>(next_adv + next_value);
    }
    for (std::size_t t = len; t < R; ++t) a[t] = ret[t] = T(0);
  }
}

}  // namespace p4lm::rl
