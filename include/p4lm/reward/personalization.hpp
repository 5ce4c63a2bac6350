#pragma once
// Personalization: does the pitch speak to this user's preferences? A Bradley-Terry cross-encoder:
// r(profile, pitch) = head(TextFeatures::pair_features(profile text, pitch)), trained on
// personalization/ pairs (the winner links the movie to what the profile says the user likes; the
// loser is generic or names a preference the user does not have). The score is r (a logit).

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "p4lm/core/backend.hpp"
#include "p4lm/reward/head.hpp"
#include "p4lm/reward/model_file.hpp"
#include "p4lm/reward/reward_model.hpp"
#include "p4lm/reward/text_features.hpp"

namespace p4lm::reward {

template <Backend B = backend::cpu>
class Personalization {
  static_assert(std::is_same_v<B, backend::cpu>,
                "reward::Personalization: only the CPU backend is implemented");

 public:
  using backend_type = B;
  static constexpr std::string_view name() { return "personalization"; }
  static constexpr unsigned reads = reads_pitch | reads_profile;
  static constexpr std::size_t cf_width = 0;

  Personalization(std::shared_ptr<TextFeatures> f, MlpHead<float> head)
      : f_(std::move(f)), head_(std::move(head)) {}
  static Personalization load(const std::filesystem::path& path, std::shared_ptr<TextFeatures> f) {
    return Personalization(std::move(f), load_head(path, name(), cf_width));
  }
  void save(const std::filesystem::path& path) const { save_head(path, name(), cf_width, head_); }
  MlpHead<float>& head() noexcept { return head_; }

  std::vector<float> features(std::span<const Rollout> batch) {
    std::vector<std::string> a, b;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      check_rollout(batch[i], reads, name(), "rollout " + std::to_string(i));
      a.emplace_back(batch[i].profile);
      b.emplace_back(batch[i].pitch);
    }
    return f_->pair_features(a, b);
  }
  std::vector<double> score(std::span<const Rollout> batch) {
    const auto x = features(batch);
    const auto y = head_.forward(x.data(), batch.size());
    return {y.begin(), y.end()};
  }

 private:
  std::shared_ptr<TextFeatures> f_;
  MlpHead<float> head_;
};

}  // namespace p4lm::reward
