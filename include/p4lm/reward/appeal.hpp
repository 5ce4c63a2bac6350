#pragma once
// Appeal: is the pitch compelling? A Bradley-Terry reward: r(pitch) = head(frozen MiniLM embedding of
// the pitch), trained on appeal/ pairs (the winner has the hook, vivid words, call to action) so that
// P(a beats b) = σ(r(a) - r(b)). The score is r itself (a logit: differences are what it means).

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

// Single-text features for a head: the unit embedding scaled to ~unit entries.
inline std::vector<float> text_rows(TextFeatures& f, const std::vector<std::string>& texts) {
  auto x = f.single(texts);
  const float s = std::sqrt(float(f.dim()));
  for (auto& v : x) v *= s;
  return x;
}

template <Backend B = backend::cpu>
class Appeal {
  static_assert(std::is_same_v<B, backend::cpu>, "reward::Appeal: only the CPU backend is implemented");

 public:
  using backend_type = B;
  static constexpr std::string_view name() { return "appeal"; }
  static constexpr unsigned reads = reads_pitch;
  static constexpr std::size_t cf_width = 0;

  Appeal(std::shared_ptr<TextFeatures> f, MlpHead<float> head) : f_(std::move(f)), head_(std::move(head)) {}
  static Appeal load(const std::filesystem::path& path, std::shared_ptr<TextFeatures> f) {
    return Appeal(std::move(f), load_head(path, name(), cf_width));
  }
  void save(const std::filesystem::path& path) const { save_head(path, name(), cf_width, head_); }
  MlpHead<float>& head() noexcept { return head_; }

  static std::vector<std::string> inputs(std::span<const Rollout> batch) {
    std::vector<std::string> t;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      check_rollout(batch[i], reads, name(), "rollout " + std::to_string(i));
      t.emplace_back(batch[i].pitch);
    }
    return t;
  }
  std::vector<float> features(std::span<const Rollout> batch) { return text_rows(*f_, inputs(batch)); }
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
