#pragma once
// What an RL iteration changes besides the optimizer, in one place: the policy and its value head
// (the parameters the shared Trainer optimizes: this is the Trainer's Model), the KL controller's β,
// the shuffling RNG and the iteration count. The frozen reference is not state: it is rebuilt from
// the same warm start. The Trainer's checkpoint holds the parameters and AdamW's moments over both
// (policy first, then v_head.*; moments for the trainable ones only, nn/adamw.hpp); state() /
// load_state() carry the rest through the objective's state.
//
//   rl::RLState<Policy, rl::AdaptiveKL> s(std::move(policy), rl::AdaptiveKL(0.2, 6, 1e4), seed);
//   train::Trainer trainer(s, objective, options);   // PPOObjective / PolicyGradientObjective own one

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/rng.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/value_head.hpp"

namespace p4lm::rl {

template <Policy P, class KLControl>
class RLState {
 public:
  using T = typename P::value_type;
  using value_type = T;

  RLState(P policy, KLControl kl, std::uint64_t seed)
      : policy(std::move(policy)),
        reference(this->policy.clone()),
        head(this->policy.lm().config().d_model),
        kl(std::move(kl)),
        rng(seed, 0x5250),  // "RP": the minibatch order's stream
        seed_(seed) {
    for (auto& p : reference.parameters()) p.trainable = false;
    refresh();
  }
  RLState(const RLState&) = delete;
  RLState& operator=(const RLState&) = delete;

  P policy;
  P reference;
  ValueHead<T> head;
  KLControl kl;
  Rng rng;
  std::size_t iteration = 0;

  // Policy and value-head parameters as one list (trainable flags re-read from the modules).
  std::span<Parameter<T>> parameters() {
    refresh();
    return params_;
  }
  void zero_grad() {
    for (auto& p : parameters()) std::fill(p.grad.data(), p.grad.data() + p.grad.numel(), T(0));
  }
  // The sampling seed of iteration i: every iteration draws new samples, reproducibly.
  std::uint64_t sampling_seed() const noexcept {
    return (std::uint64_t{Rng::u32_at(seed_, 0x5253, iteration)} << 32) |
           Rng::u32_at(seed_, 0x5254, iteration);
  }
  // Data parallel: rank r samples its share of the prompts from a seed of its own, so the union over
  // the ranks is a pure function of (seed, iteration, ranks); rank 0's is the one-process seed.
  std::uint64_t sampling_seed(std::size_t rank) const noexcept {
    const std::uint64_t s = sampling_seed();
    if (rank == 0) return s;
    return (std::uint64_t{Rng::u32_at(s, 0x5255, rank)} << 32) | Rng::u32_at(s, 0x5256, rank);
  }

  // β (as JSON: shortest round-trip digits), the RNG position and the iteration.
  nlohmann::json state() const {
    return {{"iteration", iteration}, {"kl_coef", kl.value()}, {"rng_position", rng.position()}};
  }
  void load_state(const nlohmann::json& j) {
    iteration = j.at("iteration").get<std::size_t>();
    kl.set_value(j.at("kl_coef").get<double>());
    rng.set_position(j.at("rng_position").get<std::uint64_t>());
  }

 private:
  void refresh() {
    params_.clear();
    for (const auto& p : policy.parameters()) params_.push_back(p);
    for (const auto& p : head.parameters()) params_.push_back(p);
  }

  std::uint64_t seed_;
  std::vector<Parameter<T>> params_;
};

}  // namespace p4lm::rl
