#pragma once
// Personalization: does the pitch speak to this user's preferences? A Bradley-Terry cross-encoder read
// sentence by sentence: each sentence s of the pitch gets c_s = head(TextFeatures::pair_features(
// profile text, s)), and the pitch's score is r = log Σ_s exp(c_s), a logit trained on personalization/
// pairs (the winner links the movie to what the profile says the user likes; the loser is generic or
// names a preference the user does not have).
// Why sentences: the winner and loser of a pair differ in one link sentence; cross-encoding the whole
// pitch dilutes it among the movie's sentences (0.94 held-out pair accuracy), while scoring it on its
// own against the profile isolates it (docs/rewards.md). Why a soft maximum: a pitch is as personal as
// its most personal sentence; unlike a mean, it gives no reward for cutting the sentences about the
// movie, and repeating a sentence k times adds at most log k.

#include <cstddef>
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
#include "p4lm/reward/sentences.hpp"
#include "p4lm/reward/text_features.hpp"
#include "p4lm/reward/token_alignment.hpp"

namespace p4lm::reward {

// Feature rows of a batch of pitches, one per sentence: pitch i owns rows offsets[i] .. offsets[i+1]-1.
struct SentenceRows {
  std::vector<float> rows;
  std::vector<std::size_t> offsets{0};
};

template <Backend B = backend::cpu>
class Personalization {
  static_assert(std::is_same_v<B, backend::cpu>,
                "reward::Personalization: only the CPU backend is implemented");

 public:
  using backend_type = B;
  static constexpr std::string_view name() { return "personalization"; }
  static constexpr unsigned reads = reads_pitch | reads_profile;
  static constexpr std::size_t cf_width = 0;
  // Written into the model file and required on load: a whole-pitch head of older versions has the
  // same width and would load, silently scoring something else.
  static constexpr std::string_view pitch_score = "sentence_log_sum_exp";

  // The head's input width for an encoder of width d (TextFeatures::pair_features).
  static constexpr std::size_t head_width(std::size_t d) { return 3 * d; }

  Personalization(std::shared_ptr<TextFeatures> f, MlpHead<float> head)
      : f_(std::move(f)), head_(std::move(head)) {}
  static Personalization load(const std::filesystem::path& path, std::shared_ptr<TextFeatures> f) {
    return Personalization(std::move(f),
                           load_head(path, name(), cf_width, {{"pitch_score", std::string(pitch_score)}}));
  }
  void save(const std::filesystem::path& path) const {
    save_head(path, name(), cf_width, head_, {{"pitch_score", std::string(pitch_score)}});
  }
  MlpHead<float>& head() noexcept { return head_; }

  // One row per sentence (a pitch without a sentence gets one row for the empty text, so it has a score).
  SentenceRows features(std::span<const Rollout> batch) {
    std::vector<std::string> profiles, sentences;
    SentenceRows x;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      check_rollout(batch[i], reads, name(), "rollout " + std::to_string(i));
      auto s = split_sentences(batch[i].pitch);
      if (s.empty()) s.emplace_back();
      for (auto& t : s) profiles.emplace_back(batch[i].profile), sentences.push_back(std::move(t));
      x.offsets.push_back(x.offsets.back() + s.size());
    }
    x.rows = f_->pair_features(profiles, sentences);
    return x;
  }
  std::vector<double> score(std::span<const Rollout> batch) {
    const auto x = features(batch);
    const auto r = log_sum_exp_groups(head_.forward(x.rows.data(), x.offsets.back()), x.offsets);
    return {r.begin(), r.end()};
  }

 private:
  std::shared_ptr<TextFeatures> f_;
  MlpHead<float> head_;
};

}  // namespace p4lm::reward
