#pragma once
// What a learned reward must provide, as a C++20 concept: a name (metrics are rewards/<name>/...),
// the rollout fields it reads, the backend it runs on, and a batched score.
//
//   struct Brevity {
//     using backend_type = p4lm::backend::cpu;
//     static constexpr std::string_view name() { return "brevity"; }
//     static constexpr unsigned reads = p4lm::reward::reads_pitch;
//     std::vector<double> score(std::span<const p4lm::reward::Rollout> batch);   // one per rollout
//   };
//   static_assert(p4lm::reward::check_reward_model<Brevity>());
//
// A Rollout is what a finished sample looks like to a reward once it is decoded: the pitch text and
// what the prompt was built from (user, movie, the movie's facts as premise text, the user's profile
// text, the user's CF embedding). A reward reads only the fields its `reads` mask names, and a rollout
// missing one of them is an error naming the field: never a silent zero reward.

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::reward {

struct Rollout {
  std::string_view pitch{};  // the generated text
  std::int64_t user_id = -1, movie_id = -1;
  std::string_view premise{};               // the movie's facts and overview (data: premise_text)
  std::string_view profile{};               // the user's profile text
  std::span<const float> user_embedding{};  // the user's CF embedding (width = the CF model's)
};

// Fields a reward reads (bit mask).
inline constexpr unsigned reads_pitch = 1u, reads_premise = 2u, reads_profile = 4u, reads_user_embedding = 8u;

// Throws InvalidArgument naming the rollout (`where`) and the first field the mask needs but is empty.
inline void check_rollout(const Rollout& r, unsigned reads, std::string_view reward, std::string_view where) {
  const auto missing = [&](std::string_view field) {
    fail<InvalidArgument>("reward ", reward, ": ", where, ": field '", field, "' is missing or empty");
  };
  if ((reads & reads_pitch) && r.pitch.find_first_not_of(" \t\r\n") == std::string_view::npos)
    missing("pitch");
  if ((reads & reads_premise) && r.premise.empty()) missing("premise");
  if ((reads & reads_profile) && r.profile.empty()) missing("profile");
  if ((reads & reads_user_embedding) && r.user_embedding.empty()) missing("user_embedding");
}

template <class R>
concept RewardModel = requires(R& r, std::span<const Rollout> batch) {
  typename R::backend_type;
  { R::name() } -> std::convertible_to<std::string_view>;
  { R::reads } -> std::convertible_to<unsigned>;
  { r.score(batch) } -> std::convertible_to<std::vector<double>>;
};

template <class R>
constexpr bool check_reward_model() {
  static_assert(
      requires { typename R::backend_type; },
      "p4lm::reward: a reward needs `using backend_type = ...` (the backend tag it runs on)");
  static_assert(
      requires {
        { R::name() } -> std::convertible_to<std::string_view>;
      },
      "p4lm::reward: a reward needs `static constexpr std::string_view name()` (metrics rewards/<name>/...)");
  static_assert(
      requires {
        { R::reads } -> std::convertible_to<unsigned>;
      },
      "p4lm::reward: a reward needs `static constexpr unsigned reads` (reads_pitch | reads_premise | ...)");
  static_assert(
      requires(R & r, std::span<const Rollout> b) {
        { r.score(b) } -> std::convertible_to<std::vector<double>>;
      },
      "p4lm::reward: a reward needs `std::vector<double> score(std::span<const reward::Rollout>)`, one "
      "score per rollout");
  return RewardModel<R>;
}

}  // namespace p4lm::reward
