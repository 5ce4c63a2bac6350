#pragma once
// What PPO asks of a reward: a batched callable scoring finished samples.
//
//   auto count_fives = [](std::span<const rl::Sample> batch) {
//     std::vector<double> s;
//     for (const auto& x : batch) s.push_back(std::count(x.response.begin(), x.response.end(), 5));
//     return s;
//   };
//
// A sample carries its prompt's key (the same one the policy's prefix reads: which user and movie),
// the prompt's and the response's token ids, and whether the response ended with EOS. A learned
// reward mix (docs/rl.md) is wrapped the same way: decode, look the key up, score the batch.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace p4lm::rl {

struct Sample {
  std::size_t key = 0;
  std::span<const std::int32_t> prompt;
  std::span<const std::int32_t> response;  // EOS included when the sample ended
  bool ended = false;                      // emitted EOS within the token budget
};

template <class F>
concept RewardFunction = std::invocable<F&, std::span<const Sample>> &&
    std::convertible_to<std::invoke_result_t<F&, std::span<const Sample>>, std::vector<double>>;

template <class F>
constexpr bool check_reward_function() {
  static_assert(std::invocable<F&, std::span<const Sample>>,
                "p4lm::rl: a reward must be callable as `reward(std::span<const rl::Sample> batch)` "
                "(see docs/rl.md, 'Rewards')");
  static_assert(RewardFunction<F>,
                "p4lm::rl: a reward must return std::vector<double>, one score per sample of the batch");
  return true;
}

}  // namespace p4lm::rl
