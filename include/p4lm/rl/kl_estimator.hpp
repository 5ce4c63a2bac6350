#pragma once
// Per-token estimators of KL(π || π_ref) from the log-probabilities of tokens sampled from π
// (Schulman, "Approximating KL divergence", 2020). With r = π_ref(x) / π(x), i.e.
// log r = ref_logprob - logprob:
//
//   k1 = -log r                 unbiased, high variance, negative on some tokens
//   k2 = (log r)² / 2           biased, low variance, always >= 0
//   k3 = (r - 1) - log r        unbiased, low variance, always >= 0 (TRL's "k3" estimator)
//
// The KL penalty in PPO's shaped reward uses one of them per token (TRL: kl_penalty "kl" = k1).

#include <cmath>
#include <cstddef>
#include <string_view>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/masked.hpp"

namespace p4lm::rl {

enum class KLEstimator { k1, k2, k3 };

inline const char* name(KLEstimator e) noexcept {
  switch (e) {
    case KLEstimator::k1:
      return "k1";
    case KLEstimator::k2:
      return "k2";
    case KLEstimator::k3:
      return "k3";
  }
  return "?";
}

inline KLEstimator kl_estimator_from_name(std::string_view s) {
  if (s == "k1" || s == "kl") return KLEstimator::k1;
  if (s == "k2" || s == "mse") return KLEstimator::k2;
  if (s == "k3") return KLEstimator::k3;
  fail<InvalidArgument>("kl_penalty: unknown estimator '", s, "' (expected k1, k2 or k3)");
}

// One token's estimate from log π(x) and log π_ref(x).
inline double kl_estimate(double logprob, double ref_logprob, KLEstimator e) noexcept {
  const double log_r = ref_logprob - logprob;
  switch (e) {
    case KLEstimator::k1:
      return -log_r;
    case KLEstimator::k2:
      return 0.5 * log_r * log_r;
    case KLEstimator::k3:
      return std::expm1(log_r) - log_r;
  }
  return 0;
}

// logprobs, ref_logprobs, mask (B, R) -> kl (B, R), 0 on padding.
template <class T>
void kl_per_token(TokenView<T> kl, const TokenView<T>& logprobs, const TokenView<T>& ref_logprobs,
                  const TokenView<T>& mask, KLEstimator e) {
  expect_shape("kl_per_token: ref_logprobs", ref_logprobs.shape(), logprobs.shape());
  expect_shape("kl_per_token: mask", mask.shape(), logprobs.shape());
  expect_shape("kl_per_token: kl", kl.shape(), logprobs.shape());
  for (std::size_t i = 0; i < kl.numel(); ++i)
    kl.data()[i] = mask.data()[i] > T(0)
                       ? static_cast<T>(kl_estimate(logprobs.data()[i], ref_logprobs.data()[i], e))
                       : T(0);
}

}  // namespace p4lm::rl
