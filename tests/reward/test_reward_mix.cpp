// RewardMix: weights, per-component normalisation, metrics, the reward concepts, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "p4lm/reward/reward_mix.hpp"
#include "p4lm/rl/reward_function.hpp"

using namespace p4lm;
using reward::Rollout;

namespace {
// Pitch length in characters: a deterministic reward with a known value.
struct Length {
  using backend_type = backend::cpu;
  static constexpr std::string_view name() { return "length"; }
  static constexpr unsigned reads = reward::reads_pitch;
  std::vector<double> score(std::span<const Rollout> b) {
    std::vector<double> s;
    for (std::size_t i = 0; i < b.size(); ++i) {
      reward::check_rollout(b[i], reads, name(), "rollout " + std::to_string(i));
      s.push_back(double(b[i].pitch.size()));
    }
    return s;
  }
};
// The user id, read from the profile's presence: a second, independent component.
struct UserId {
  using backend_type = backend::cpu;
  static constexpr std::string_view name() { return "user"; }
  static constexpr unsigned reads = reward::reads_pitch | reward::reads_profile;
  std::vector<double> score(std::span<const Rollout> b) {
    std::vector<double> s;
    for (std::size_t i = 0; i < b.size(); ++i) {
      reward::check_rollout(b[i], reads, name(), "rollout " + std::to_string(i));
      s.push_back(double(b[i].user_id));
    }
    return s;
  }
};
struct NoScore {
  using backend_type = backend::cpu;
  static constexpr std::string_view name() { return "x"; }
  static constexpr unsigned reads = 0;
};
static_assert(reward::RewardModel<Length>);
static_assert(!reward::RewardModel<NoScore>);
static_assert(reward::RewardModel<reward::RewardMix<Length, UserId>>);

std::vector<Rollout> batch() {
  return {{.pitch = "ab", .user_id = 1, .profile = "p"},
          {.pitch = "abcd", .user_id = 5, .profile = "p"},
          {.pitch = "abcdef", .user_id = 3, .profile = "p"}};
}
}  // namespace

TEST_CASE("RewardMix: weighted sum of raw components, every component kept", "[reward][mix]") {
  reward::RewardMix<Length, UserId> mix(Length{}, UserId{});
  mix.set_weights({0.5, 2.0});
  const auto b = batch();
  const auto s = mix.evaluate(b);
  REQUIRE(s.total.size() == 3);
  CHECK(s.raw[0] == std::vector<double>{2, 4, 6});
  CHECK(s.raw[1] == std::vector<double>{1, 5, 3});
  CHECK(s.total[0] == Approx(0.5 * 2 + 2.0 * 1));
  CHECK(s.total[1] == Approx(0.5 * 4 + 2.0 * 5));
  CHECK(mix.score(b) == s.total);
  const auto m = mix.metrics(s);
  CHECK(m.at("rewards/length/mean") == Approx(4.0));
  CHECK(m.at("rewards/length/std") == Approx(std::sqrt(8.0 / 3.0)));
  CHECK(m.at("rewards/user/mean") == Approx(3.0));
  CHECK(m.count("rewards/mix/mean") == 1);
}

TEST_CASE("RewardMix: standardisation uses statistics fixed from given samples", "[reward][mix]") {
  reward::RewardMix<Length, UserId> mix(Length{}, UserId{});
  mix.set_normalization(0, reward::Normalization::standardize);
  const auto b = batch();
  CHECK_THROWS_WITH(mix.evaluate(b), Catch::Contains("never fixed"));
  mix.standardize_from(b);  // length: mean 4, std sqrt(8/3)
  const std::vector<Rollout> later = {{.pitch = "abcdefgh", .user_id = 2, .profile = "p"}};
  const auto s = mix.evaluate(later);  // later batches do not move the statistics
  CHECK(s.normalized[0][0] == Approx((8 - 4.0) / std::sqrt(8.0 / 3.0)));
  CHECK(s.normalized[1][0] == 2.0);
  CHECK(s.total[0] == Approx(s.normalized[0][0] + 2.0));
  const std::vector<Rollout> same = {{.pitch = "ab", .profile = "p"}, {.pitch = "cd", .profile = "p"}};
  CHECK_THROWS_WITH(mix.standardize_from(same), Catch::Contains("constant"));
}

TEST_CASE("RewardMix: weights must be finite and non-negative, one per reward", "[reward][mix]") {
  reward::RewardMix<Length, UserId> mix(Length{}, UserId{});
  CHECK_THROWS_WITH(mix.set_weights({1.0, -0.1}), Catch::Contains("'user'") && Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(mix.set_weights({1.0}), Catch::Contains("1 weights for 2"));
  CHECK_THROWS(mix.set_weights({1.0, NAN}));
  reward::RewardMix<Length> single(Length{});  // the reward-hacking study's one-member mix
  CHECK(single.score(batch()) == std::vector<double>{2, 4, 6});
}

TEST_CASE("Bad rollouts are errors naming the field, never a zero reward", "[reward][mix]") {
  reward::RewardMix<Length, UserId> mix(Length{}, UserId{});
  std::vector<Rollout> b = {{.pitch = "ok", .profile = "p"}, {.pitch = "  ", .profile = "p"}};
  CHECK_THROWS_WITH(mix.score(b), Catch::Contains("rollout 1") && Catch::Contains("'pitch'"));
  b = {{.pitch = "ok"}};
  CHECK_THROWS_WITH(mix.score(b), Catch::Contains("user") && Catch::Contains("'profile'"));
}

TEST_CASE("RewardMix plugs into PPO as an rl::RewardFunction", "[reward][mix]") {
  reward::RewardMix<Length> mix(Length{});
  auto f = mix.for_samples([](const rl::Sample& x) {
    return reward::RolloutData{.pitch = std::string(x.response.size(), 'a'), .user_id = std::int64_t(x.key)};
  });
  static_assert(rl::check_reward_function<decltype(f)>());
  const std::vector<std::int32_t> r1 = {1, 2, 3}, r2 = {4};
  const std::vector<rl::Sample> samples = {{0, {}, r1, true}, {1, {}, r2, true}};
  CHECK(f(std::span<const rl::Sample>(samples)) == std::vector<double>{3, 1});
}
