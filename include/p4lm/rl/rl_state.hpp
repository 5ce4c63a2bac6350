#pragma once
// What an RL iteration changes, in one place so it can be checkpointed: the policy, its value head,
// the AdamW moments and step over both, the KL controller's β, the shuffling RNG and the iteration
// count. The frozen reference is not state: it is rebuilt from the same warm start.
//
//   state.save("ppo.safetensors");       // atomic; tensors policy.*, value.*, adam.m.*, adam.v.*
//   state.load("ppo.safetensors");       // same parameter names and config, or a ParseError
//
// PPOTrainer and PolicyGradientTrainer own one each.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/value_head.hpp"

namespace p4lm::rl {

template <Policy P, class KLControl>
class RLState {
 public:
  using T = typename P::value_type;

  RLState(P policy, KLControl kl, AdamWOptions opt, std::uint64_t seed, nlohmann::json fingerprint)
      : policy(std::move(policy)),
        reference(this->policy.clone()),
        head(this->policy.lm().config().d_model),
        kl(std::move(kl)),
        rng(seed, 0x5250),  // "RP": the minibatch order's stream
        seed_(seed),
        fingerprint_(std::move(fingerprint)) {
    for (auto& p : reference.parameters()) p.trainable = false;
    refresh();
    optimizer = AdamW<T>(params_, opt);
  }
  RLState(const RLState&) = delete;
  RLState& operator=(const RLState&) = delete;

  P policy;
  P reference;
  ValueHead<T> head;
  KLControl kl;
  AdamW<T> optimizer;
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

  void save(const std::filesystem::path& path) {
    static_assert(std::is_same_v<T, float>, "RLState::save: checkpoints hold float parameters");
    std::vector<io::SafetensorsEntry> entries;
    auto params = parameters();
    const std::size_t n_policy = policy.parameters().size();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      std::vector<std::int64_t> shape(p.value.shape().begin(), p.value.shape().end());
      const std::string name = (i < n_policy ? "policy." : "value.") + p.name;
      entries.push_back(io::tensor_f32(name, shape, std::span<const float>(p.value.data(), p.value.numel())));
      const auto m = optimizer.m(i, p.value.shape()), v = optimizer.v(i, p.value.shape());
      entries.push_back(io::tensor_f32("adam.m." + name, shape, std::span<const float>(m.data(), m.numel())));
      entries.push_back(io::tensor_f32("adam.v." + name, shape, std::span<const float>(v.data(), v.numel())));
    }
    const std::map<std::string, std::string> meta{{"format", "p4lm-rl-state-1"},
                                                  {"iteration", std::to_string(iteration)},
                                                  {"kl_coef", nlohmann::json(kl.value()).dump()},
                                                  {"rng_position", std::to_string(rng.position())},
                                                  {"adam_steps", std::to_string(optimizer.steps())},
                                                  {"config", fingerprint_.dump()}};
    io::save_safetensors(path, entries, meta);
  }

  void load(const std::filesystem::path& path) {
    static_assert(std::is_same_v<T, float>, "RLState::load: checkpoints hold float parameters");
    const auto file = io::SafetensorsFile::open(path);
    const auto& meta = file.metadata();
    auto field = [&](const char* key) -> const std::string& {
      const auto it = meta.find(key);
      if (it == meta.end()) throw ParseError(path, 0, key, "missing from the RL checkpoint's metadata");
      return it->second;
    };
    if (field("format") != "p4lm-rl-state-1")
      throw ParseError(path, 0, "format", "not an RL state checkpoint: '" + field("format") + "'");
    const auto saved = nlohmann::json::parse(field("config"));
    for (const auto& [k, v] : fingerprint_.items())
      if (!saved.contains(k) || saved.at(k) != v)
        throw ParseError(path, 0, "config." + k,
                         "the checkpoint was written with " +
                             (saved.contains(k) ? saved.at(k).dump() : "nothing") + ", this run has " +
                             v.dump());
    auto params = parameters();
    const std::size_t n_policy = policy.parameters().size();
    auto fill = [&](const std::string& name, TensorView<backend::cpu, T> dst) {
      const auto values = file.read_f32(name);
      if (values.size() != dst.numel())
        throw ParseError(
            path, 0, name,
            "has " + std::to_string(values.size()) + " values, expected " + std::to_string(dst.numel()));
      std::copy(values.begin(), values.end(), dst.data());
    };
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i];
      const std::string name = (i < n_policy ? "policy." : "value.") + p.name;
      fill(name, p.value);
      fill("adam.m." + name, optimizer.m(i, p.value.shape()));
      fill("adam.v." + name, optimizer.v(i, p.value.shape()));
    }
    iteration = std::stoull(field("iteration"));
    kl.set_value(std::stod(field("kl_coef")));  // written as JSON: shortest round-trip digits
    rng.set_position(std::stoull(field("rng_position")));
    optimizer.set_steps(std::stoll(field("adam_steps")));
  }

 private:
  void refresh() {
    params_.clear();
    for (const auto& p : policy.parameters()) params_.push_back(p);
    for (const auto& p : head.parameters()) params_.push_back(p);
  }

  std::uint64_t seed_;
  nlohmann::json fingerprint_;
  std::vector<Parameter<T>> params_;
};

}  // namespace p4lm::rl
