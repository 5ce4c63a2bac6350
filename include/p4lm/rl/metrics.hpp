#pragma once
// The metrics of an RL iteration, by the names TRL users read (docs/rl.md lists them all):
// objective/kl (mean over samples of the summed per-token KL estimate), objective/kl_coef,
// objective/entropy (mean over samples of the summed per-token entropy), objective/scores (the
// reward after the missing-EOS penalty), objective/non_score_reward (-β · objective/kl),
// objective/rlhf_reward (their sum), env/* (the raw reward, ended fraction, response length) and
// time/rollout/* (seconds in generation, the policy's and the reference's forward, scoring).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>

#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/rollout.hpp"

namespace p4lm::rl {

// Metrics of one iteration, by TRL's names.
using Metrics = std::map<std::string, double>;

// The metrics every algorithm reports about its rollout (objective/*, env/*, time/*).
template <class T>
void rollout_metrics(Metrics& m, const Rollout<T>& r, double beta) {
  const double B = static_cast<double>(r.size());
  const double kl = mean_row_sum(r.kl.view(), r.mask.view());
  double score = 0, raw = 0, raw2 = 0, ended = 0, length = 0;
  for (std::size_t b = 0; b < r.size(); ++b) {
    score += r.scores[b], raw += r.raw_scores[b], raw2 += r.raw_scores[b] * r.raw_scores[b];
    ended += r.ended[b], length += static_cast<double>(r.responses[b].size());
  }
  score /= B, raw /= B;
  m["objective/kl"] = kl;
  m["objective/kl_coef"] = beta;
  m["objective/entropy"] = mean_row_sum(r.entropy.view(), r.mask.view());
  m["objective/scores"] = score;
  m["objective/non_score_reward"] = -beta * kl;
  m["objective/rlhf_reward"] = score - beta * kl;
  m["env/reward_mean"] = raw;
  m["env/reward_std"] = std::sqrt(std::max(0.0, raw2 / B - raw * raw));
  m["env/ended_fraction"] = ended / B;
  m["env/response_length"] = length / B;
  m["time/rollout/generate"] = r.time_generate;
  m["time/rollout/policy"] = r.time_policy;
  m["time/rollout/reference"] = r.time_reference;
  m["time/rollout/score"] = r.time_score;
}

}  // namespace p4lm::rl
