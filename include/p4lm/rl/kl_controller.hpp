#pragma once
// The KL coefficient β of PPO's shaped reward r_t = -β kl_t (+ score at the last token), as a policy.
//
//   AdaptiveKL  Ziegler et al. 2019 (TRL's AdaptiveKLController): after each batch, with the batch's
//               mean per-sequence KL,  e = clip(KL / target - 1, -0.2, 0.2),
//               β <- β (1 + e · n_steps / horizon)          (n_steps = samples in the batch)
//               so β rises while the policy is further from the reference than `target` nats.
//   FixedKL     β never changes.
//
// A user's own controller is any type satisfying KLController:
//   double value() const;                          the current β
//   void update(double current_kl, std::size_t n_steps);
//   void set_value(double);                        restores β from a checkpoint

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "p4lm/core/error.hpp"

namespace p4lm::rl {

template <class K>
concept KLController = requires(K& k, const K& ck, double x, std::size_t n) {
  { ck.value() } -> std::convertible_to<double>;
  k.update(x, n);
  k.set_value(x);
};

// Readable failures for a type that is not a KLController (ensmallen's static_checks style): one
// message per missing member, naming it and the page that explains the concept.
template <class K>
constexpr bool check_kl_controller() {
  static_assert(
      requires(const K& k) {
        { k.value() } -> std::convertible_to<double>;
      },
      "p4lm::rl: a KL controller needs `double value() const` returning the current coefficient beta "
      "(see docs/rl.md, 'KL controllers')");
  static_assert(
      requires(K & k, double kl, std::size_t n) { k.update(kl, n); },
      "p4lm::rl: a KL controller needs `void update(double current_kl, std::size_t n_steps)`, "
      "called once per batch with the batch's mean per-sequence KL (see docs/rl.md)");
  static_assert(
      requires(K & k, double beta) { k.set_value(beta); },
      "p4lm::rl: a KL controller needs `void set_value(double beta)` so checkpoints can "
      "restore it (see docs/rl.md)");
  return true;
}

class FixedKL {
 public:
  explicit FixedKL(double value = 0.2) : value_(value) {
    if (!(value >= 0) || !std::isfinite(value))
      fail<InvalidArgument>("FixedKL: init_kl_coef must be finite and >= 0, got ", value);
  }
  double value() const noexcept { return value_; }
  void update(double, std::size_t) noexcept {}
  void set_value(double v) noexcept { value_ = v; }

 private:
  double value_;
};

class AdaptiveKL {
 public:
  AdaptiveKL(double init_kl_coef = 0.2, double target = 6.0, double horizon = 10000.0)
      : value_(init_kl_coef), target_(target), horizon_(horizon) {
    if (!(init_kl_coef >= 0) || !std::isfinite(init_kl_coef))
      fail<InvalidArgument>("AdaptiveKL: init_kl_coef must be finite and >= 0, got ", init_kl_coef);
    if (!(target > 0)) fail<InvalidArgument>("AdaptiveKL: target must be > 0, got ", target);
    if (!(horizon > 0)) fail<InvalidArgument>("AdaptiveKL: horizon must be > 0, got ", horizon);
  }
  double value() const noexcept { return value_; }
  double target() const noexcept { return target_; }
  double horizon() const noexcept { return horizon_; }
  void update(double current_kl, std::size_t n_steps) noexcept {
    const double error = std::clamp(current_kl / target_ - 1.0, -0.2, 0.2);
    value_ *= 1.0 + error * static_cast<double>(n_steps) / horizon_;
  }
  void set_value(double v) noexcept { value_ = v; }

 private:
  double value_, target_, horizon_;
};

static_assert(KLController<FixedKL> && KLController<AdaptiveKL>);

// The KL controller a config describes: AdaptiveKL(init_kl_coef, target, horizon), FixedKL(init_kl_coef),
// or a user's controller built from the config or default-constructed.
template <class K, class Config>
K make_kl_controller(const Config& c) {
  if constexpr (std::is_same_v<K, AdaptiveKL>)
    return AdaptiveKL(c.init_kl_coef, c.target, c.horizon);
  else if constexpr (std::is_same_v<K, FixedKL>)
    return FixedKL(c.init_kl_coef);
  else if constexpr (std::is_constructible_v<K, const Config&>)
    return K(c);
  else
    return K{};
}

}  // namespace p4lm::rl
