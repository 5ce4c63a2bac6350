#pragma once
// The KL-shaped per-token reward of RLHF PPO (Ziegler et al. 2019, TRL):
//
//   kl_t = estimator(log π(y_t), log π_ref(y_t))      per generated token
//   r_t  = -β kl_t,   plus the sample's score at its last token
//
// so the return of a sample is score - β Σ_t kl_t: the reward minus the KL penalty to the reference.

#include <cstddef>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/kl_estimator.hpp"
#include "p4lm/rl/rollout.hpp"

namespace p4lm::rl {

// Fills r.kl and r.rewards from r.logprobs, r.ref_logprobs, r.scores.
template <class T>
void shape_rewards(Rollout<T>& r, double beta, KLEstimator e) {
  const std::size_t B = r.size(), R = r.response_len;
  if (r.scores.size() != B)
    fail<InvalidArgument>("shape_rewards: ", r.scores.size(), " scores for ", B, " samples");
  kl_per_token(r.kl.view(), r.logprobs.view(), r.ref_logprobs.view(), r.mask.view(), e);
  for (std::size_t i = 0; i < B * R; ++i) r.rewards.data()[i] = static_cast<T>(-beta * r.kl.data()[i]);
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t len = r.responses[b].size();
    if (len) r.rewards.data()[b * R + len - 1] += static_cast<T>(r.scores[b]);
  }
}

// Per sample: score - β Σ_t kl_t (the KL-regularised return; RLOO's reward).
template <class T>
std::vector<double> regularised_returns(const Rollout<T>& r, double beta) {
  const std::size_t B = r.size(), R = r.response_len;
  std::vector<double> out(B);
  for (std::size_t b = 0; b < B; ++b) {
    double kl = 0;
    for (std::size_t k = 0; k < R; ++k) kl += static_cast<double>(r.kl.data()[b * R + k]);
    out[b] = r.scores[b] - beta * kl;
  }
  return out;
}

}  // namespace p4lm::rl
