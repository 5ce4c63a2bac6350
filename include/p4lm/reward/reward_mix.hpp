#pragma once
// RewardMix<Rewards...>: the weighted sum PPO optimises, the rewards held in a Boost.Hana tuple.
//
//   reward::RewardMix<reward::Precision<>, reward::Appeal<>, reward::Personalization<>,
//                     reward::PreferenceRelevance<p4lm::backend::cpu, 32>> mix(prec, app, pers, rel);
//   mix.set_weights({1.0, 0.5, 1.0, 0.5});                       // η, run-time, each >= 0
//   mix.standardize_from(sft_samples);                            // fix mean/std per standardised component
//   auto s = mix.evaluate(batch);    // s.total[i], s.raw[c][i], s.normalized[c][i]
//   auto m = mix.metrics(s);         // rewards/<name>/mean, rewards/<name>/std, rewards/mix/...
//   std::vector<double> r = mix.score(batch);                     // also a RewardModel itself
//   auto ppo_reward = mix.for_samples([&](const rl::Sample& x) { return RolloutData{...}; });
//
// Component c contributes η_c · n_c(x_c): n_c is the identity (Normalization::none) or (x - μ)/σ with
// μ, σ fixed once from given samples (Normalization::standardize; the SFT policy's samples in P4LM,
// so that components on different scales weigh what η says and the scale does not drift during PPO).
// A single-reward mix is the same type with one member (the reward-hacking study).

#include <array>
#include <cmath>
#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/reward/reward_model.hpp"

namespace p4lm::reward {

enum class Normalization { none, standardize };

struct ComponentNormalization {
  Normalization kind = Normalization::none;
  double mean = 0, std = 1;
  bool fitted = false;
};

// A rollout that owns its text (what a decoder builds from a PPO sample); view() is what rewards read.
struct RolloutData {
  std::string pitch{}, premise{}, profile{};
  std::int64_t user_id = -1, movie_id = -1;
  std::vector<float> user_embedding{};
  Rollout view() const { return {pitch, user_id, movie_id, premise, profile, user_embedding}; }
};

struct MixScores {
  std::vector<double> total;                    // per rollout: Σ η_c n_c(x_c)
  std::vector<std::vector<double>> raw;         // [component][rollout]
  std::vector<std::vector<double>> normalized;  // [component][rollout]
};

// Mean and population standard deviation ({0, 0} for no values): what standardisation fixes.
inline std::pair<double, double> mean_std(std::span<const double> v) {
  if (v.empty()) return {0.0, 0.0};
  double m = 0, q = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) q += (x - m) * (x - m);
  return {m, std::sqrt(q / double(v.size()))};
}

template <class... Rewards>
class RewardMix {
  static_assert(sizeof...(Rewards) >= 1, "RewardMix: give at least one reward");
  static_assert((check_reward_model<Rewards>() && ...),
                "RewardMix: every member must be a reward::RewardModel");
  using First = std::tuple_element_t<0, std::tuple<Rewards...>>;
  static_assert((std::is_same_v<typename Rewards::backend_type, typename First::backend_type> && ...),
                "RewardMix: every reward must run on the same backend");

 public:
  using backend_type = typename First::backend_type;
  static constexpr std::size_t size = sizeof...(Rewards);
  static constexpr unsigned reads = (Rewards::reads | ...);
  static constexpr std::string_view name() { return "mix"; }
  static constexpr std::array<std::string_view, size> names() { return {Rewards::name()...}; }

  explicit RewardMix(Rewards... rewards) : rewards_(boost::hana::make_tuple(std::move(rewards)...)) {
    weights_.fill(1.0);
  }

  template <std::size_t I>
  auto& get() noexcept {
    return rewards_[boost::hana::size_c<I>];
  }
  const std::array<double, size>& weights() const noexcept { return weights_; }
  const std::array<ComponentNormalization, size>& normalization() const noexcept { return norm_; }

  // η: one per reward, finite and >= 0 (a negative weight would reward the opposite of the model).
  void set_weights(std::span<const double> eta) {
    if (eta.size() != size)
      fail<InvalidArgument>("RewardMix: ", eta.size(), " weights for ", size, " rewards");
    for (std::size_t c = 0; c < size; ++c)
      if (!std::isfinite(eta[c]) || eta[c] < 0)
        fail<InvalidArgument>("RewardMix: weight of '", names()[c], "' is ", eta[c],
                              "; weights must be finite and >= 0");
    std::copy(eta.begin(), eta.end(), weights_.begin());
  }
  void set_weights(std::initializer_list<double> eta) {
    set_weights(std::span<const double>(eta.begin(), eta.size()));
  }

  void set_normalization(std::size_t c, Normalization kind) {
    if (c >= size) fail<InvalidArgument>("RewardMix: component ", c, " of ", size);
    norm_[c] = {kind, 0, 1, kind == Normalization::none};
  }
  // Fixes μ, σ (population) of every standardised component from these samples; later batches do not move
  // them.
  void standardize_from(std::span<const Rollout> samples) {
    if (samples.empty()) fail<InvalidArgument>("RewardMix: no samples to fix the normalisation from");
    const auto raw = score_components(samples);
    for (std::size_t c = 0; c < size; ++c) {
      if (norm_[c].kind != Normalization::standardize) continue;
      const auto [m, s] = mean_std(raw[c]);
      if (!(s > 1e-12))
        fail<InvalidArgument>("RewardMix: '", names()[c], "' is constant (", m, ") over the ", samples.size(),
                              " samples; it cannot be standardised");
      norm_[c] = {Normalization::standardize, m, s, true};
    }
  }
  // Statistics given directly (e.g. read back from a run's config).
  void set_statistics(std::size_t c, double mean, double std) {
    if (c >= size || !(std > 0) || !std::isfinite(mean))
      fail<InvalidArgument>("RewardMix: bad statistics for component ", c, ": mean ", mean, ", std ", std);
    norm_[c] = {Normalization::standardize, mean, std, true};
  }

  MixScores evaluate(std::span<const Rollout> batch) {
    for (std::size_t c = 0; c < size; ++c)
      if (norm_[c].kind == Normalization::standardize && !norm_[c].fitted)
        fail<InvalidArgument>("RewardMix: '", names()[c],
                              "' is standardised but its statistics were never fixed "
                              "(call standardize_from(samples) or set_statistics)");
    MixScores s;
    s.raw = score_components(batch);
    s.total.assign(batch.size(), 0.0);
    s.normalized.resize(size);
    for (std::size_t c = 0; c < size; ++c) {
      if (s.raw[c].size() != batch.size())
        fail<InvalidArgument>("RewardMix: '", names()[c], "' returned ", s.raw[c].size(), " scores for ",
                              batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const double x = s.raw[c][i];
        if (!std::isfinite(x))
          fail<InvalidArgument>("RewardMix: '", names()[c], "' scored rollout ", i, " ", x);
        const double n = norm_[c].kind == Normalization::standardize ? (x - norm_[c].mean) / norm_[c].std : x;
        s.normalized[c].push_back(n);
        s.total[i] += weights_[c] * n;
      }
    }
    return s;
  }
  std::vector<double> score(std::span<const Rollout> batch) { return evaluate(batch).total; }

  // rewards/<name>/mean and /std of the raw component values, and of the mix.
  std::map<std::string, double> metrics(const MixScores& s) const {
    std::map<std::string, double> m;
    const auto put = [&](std::string_view n, const std::vector<double>& v) {
      const auto [mean, sd] = mean_std(v);
      m["rewards/" + std::string(n) + "/mean"] = mean;
      m["rewards/" + std::string(n) + "/std"] = sd;
    };
    for (std::size_t c = 0; c < size; ++c) put(names()[c], s.raw[c]);
    put(name(), s.total);
    return m;
  }

  // A callable PPO takes (rl::RewardFunction): decode each sample into a RolloutData, score the batch.
  template <class Decode>
  auto for_samples(Decode decode) {
    return [this, decode](auto batch) -> std::vector<double> {
      std::vector<RolloutData> owned;
      owned.reserve(batch.size());
      for (const auto& x : batch) owned.push_back(decode(x));
      std::vector<Rollout> views;
      for (const auto& o : owned) views.push_back(o.view());
      return score(views);
    };
  }

 private:
  std::vector<std::vector<double>> score_components(std::span<const Rollout> batch) {
    std::vector<std::vector<double>> raw;
    boost::hana::for_each(rewards_, [&](auto& r) { raw.push_back(r.score(batch)); });
    return raw;
  }
  boost::hana::tuple<Rewards...> rewards_;
  std::array<double, size> weights_{};
  std::array<ComponentNormalization, size> norm_{};
};

}  // namespace p4lm::reward
