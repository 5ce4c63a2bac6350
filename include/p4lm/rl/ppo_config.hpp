#pragma once
// PPO's settings under the names TRL users know (trl.PPOConfig), validated at construction of the
// trainer. Defaults are TRL's except where a comment says otherwise.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/rl/kl_estimator.hpp"
#include "p4lm/rl/sampling_settings.hpp"

namespace p4lm::rl {

struct PPOConfig {
  // Batches: batch_size prompts are sampled per iteration, then ppo_epochs passes over them in
  // minibatches of mini_batch_size samples (batch_size / mini_batch_size optimizer steps per epoch).
  std::size_t batch_size = 64;       // TRL: 128 (smaller here: CPU rollouts)
  std::size_t mini_batch_size = 16;  // TRL: 128
  std::size_t ppo_epochs = 4;
  double learning_rate = 1.41e-5;
  double max_grad_norm = 1.0;  // global norm over policy and value head (<= 0: none; TRL: none)
  double weight_decay = 0.0;
  // KL penalty: r_t = -β kl_t (+ score at the last token), β from the KL controller.
  double init_kl_coef = 0.2;
  double target = 6.0;            // AdaptiveKL: per-sample KL (nats, summed over tokens) it steers to
  double horizon = 10000.0;       // AdaptiveKL: samples over which β may change by at most 20 %
  std::string kl_penalty = "k1";  // per-token estimator: k1, k2 or k3 (kl_estimator.hpp)
  // Losses.
  double cliprange = 0.2;
  double cliprange_value = 0.2;
  double vf_coef = 0.1;
  double gamma = 1.0;
  double lam = 0.95;
  bool whiten_rewards = false;
  // Approximate-KL early stop: end the iteration's epochs once a minibatch's policy/approxkl exceeds
  // 1.5 × target_kl.
  bool early_stopping = false;
  double target_kl = 1.0;
  // Sampling (temperature 1, no top-k/top-p: PPO's ratio needs samples from the policy itself).
  std::size_t response_length = 64;  // max_new_tokens of a rollout
  std::int32_t eos_token_id = -1;    // < 0: no EOS (every sample runs to response_length)
  double missing_eos_penalty = 0;    // subtracted from the score of a sample without EOS
  // A length floor: subtracted from the score of a sample that ends before min_response_length tokens.
  std::size_t min_response_length = 0;
  double short_response_penalty = 0;
  // A repetition penalty: times the share of a sample's token n-grams said before (text/repetition.hpp).
  std::size_t repeated_ngram_size = 4;
  double repeated_ngram_penalty = 0;
  std::uint64_t seed = 0;

  KLEstimator estimator() const { return kl_estimator_from_name(kl_penalty); }
  std::size_t minibatches_per_epoch() const noexcept { return batch_size / mini_batch_size; }

  // Throws InvalidArgument naming the first field at fault.
  void validate() const {
    auto need = [](bool ok, const char* field, auto value, const char* rule) {
      if (!ok) fail<InvalidArgument>("PPOConfig: ", field, " = ", value, ": ", rule);
    };
    need(batch_size > 0, "batch_size", batch_size, "must be > 0");
    need(mini_batch_size > 0 && mini_batch_size <= batch_size, "mini_batch_size", mini_batch_size,
         "must lie in [1, batch_size]");
    need(batch_size % mini_batch_size == 0, "mini_batch_size", mini_batch_size, "must divide batch_size");
    need(ppo_epochs > 0, "ppo_epochs", ppo_epochs, "must be > 0");
    need(learning_rate > 0 && std::isfinite(learning_rate), "learning_rate", learning_rate, "must be > 0");
    need(std::isfinite(max_grad_norm), "max_grad_norm", max_grad_norm, "must be finite");
    need(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    need(init_kl_coef >= 0 && std::isfinite(init_kl_coef), "init_kl_coef", init_kl_coef, "must be >= 0");
    need(target > 0, "target", target, "must be > 0");
    need(horizon > 0, "horizon", horizon, "must be > 0");
    (void)estimator();  // names an unknown estimator
    need(cliprange > 0, "cliprange", cliprange, "must be > 0");
    need(cliprange_value > 0, "cliprange_value", cliprange_value, "must be > 0");
    need(vf_coef >= 0, "vf_coef", vf_coef, "must be >= 0");
    need(gamma >= 0 && gamma <= 1, "gamma", gamma, "must lie in [0, 1]");
    need(lam >= 0 && lam <= 1, "lam", lam, "must lie in [0, 1]");
    need(target_kl > 0, "target_kl", target_kl, "must be > 0");
    validate_sampling(*this, need);
  }

  // One line with the derived sizes (TRL prints them too).
  std::string summary() const {
    std::ostringstream os;
    os << "PPO: " << batch_size << " samples per iteration, " << ppo_epochs << " epochs x "
       << minibatches_per_epoch() << " minibatches of " << mini_batch_size << " = "
       << ppo_epochs * minibatches_per_epoch() << " optimizer steps per iteration";
    return os.str();
  }
};

inline nlohmann::json to_json(const PPOConfig& c) {
  nlohmann::json j{{"batch_size", c.batch_size},
                   {"mini_batch_size", c.mini_batch_size},
                   {"ppo_epochs", c.ppo_epochs},
                   {"learning_rate", c.learning_rate},
                   {"max_grad_norm", c.max_grad_norm},
                   {"weight_decay", c.weight_decay},
                   {"init_kl_coef", c.init_kl_coef},
                   {"target", c.target},
                   {"horizon", c.horizon},
                   {"kl_penalty", c.kl_penalty},
                   {"cliprange", c.cliprange},
                   {"cliprange_value", c.cliprange_value},
                   {"vf_coef", c.vf_coef},
                   {"gamma", c.gamma},
                   {"lam", c.lam},
                   {"whiten_rewards", c.whiten_rewards},
                   {"early_stopping", c.early_stopping},
                   {"target_kl", c.target_kl}};
  add_sampling_json(j, c);
  return j;
}

}  // namespace p4lm::rl
