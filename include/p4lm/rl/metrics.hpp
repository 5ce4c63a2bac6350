#pragma once
// The metrics of an RL iteration, by the names TRL users read (docs/rl.md lists them all):
// objective/kl (mean over samples of the summed per-token KL estimate), objective/kl_coef,
// objective/entropy (mean over samples of the summed per-token entropy), objective/scores (the
// reward after the missing-EOS penalty), objective/non_score_reward (-β · objective/kl),
// objective/rlhf_reward (their sum), env/* (the raw reward, ended fraction, response length, repeated
// n-gram share) and
// time/rollout/* (seconds in generation, the policy's and the reference's forward, scoring).
// Data parallel: given the ranks' communicator, the means are over every rank's samples (sums and
// counts all-reduced); the wall times stay this rank's.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <span>
#include <string>

#include "p4lm/dist/communicator.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/rollout.hpp"

namespace p4lm::rl {

// Metrics of one iteration, by TRL's names.
using Metrics = std::map<std::string, double>;

// The metrics every algorithm reports about its rollout (objective/*, env/*, time/*).
template <class T>
void rollout_metrics(Metrics& m, const Rollout<T>& r, double beta,
                     const dist::Communicator& comm = dist::Communicator()) {
  detail::check_same("rollout_metrics: kl", r.kl.view(), r.mask.view());
  detail::check_same("rollout_metrics: entropy", r.entropy.view(), r.mask.view());
  // Sums over this rank's samples: kl and entropy tokens, score, raw, raw², ended, length, samples,
  // repeated n-gram share.
  double sums[9] = {0, 0, 0, 0, 0, 0, 0, static_cast<double>(r.size()), 0};
  for (std::size_t i = 0; i < r.mask.numel(); ++i)
    if (r.mask.data()[i] > T(0)) sums[0] += static_cast<double>(r.kl.data()[i]);
  for (std::size_t i = 0; i < r.mask.numel(); ++i)
    if (r.mask.data()[i] > T(0)) sums[1] += static_cast<double>(r.entropy.data()[i]);
  for (std::size_t b = 0; b < r.size(); ++b) {
    sums[2] += r.scores[b], sums[3] += r.raw_scores[b], sums[4] += r.raw_scores[b] * r.raw_scores[b];
    sums[5] += r.ended[b], sums[6] += static_cast<double>(r.responses[b].size());
    if (b < r.repeated_shares.size()) sums[8] += r.repeated_shares[b];
  }
  comm.all_reduce_sum(std::span<double>(sums));
  const double B = sums[7];
  const double kl = B > 0 ? sums[0] / B : 0.0;
  double score = sums[2], raw = sums[3], raw2 = sums[4], ended = sums[5], length = sums[6];
  score /= B, raw /= B;
  m["objective/kl"] = kl;
  m["objective/kl_coef"] = beta;
  m["objective/entropy"] = B > 0 ? sums[1] / B : 0.0;
  m["objective/scores"] = score;
  m["objective/non_score_reward"] = -beta * kl;
  m["objective/rlhf_reward"] = score - beta * kl;
  m["env/reward_mean"] = raw;
  m["env/reward_std"] = std::sqrt(std::max(0.0, raw2 / B - raw * raw));
  m["env/ended_fraction"] = ended / B;
  m["env/response_length"] = length / B;
  m["env/repeated_ngram_share"] = sums[8] / B;
  m["time/rollout/generate"] = r.time_generate;
  m["time/rollout/policy"] = r.time_policy;
  m["time/rollout/reference"] = r.time_reference;
  m["time/rollout/score"] = r.time_score;
}

}  // namespace p4lm::rl
