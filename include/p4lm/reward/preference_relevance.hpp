#pragma once
// PreferenceRelevance<B, Dim>: does the pitch point, in the recommender's space, to what the user
// likes? The pitch is mapped into the CF item space, q = head(frozen MiniLM embedding of the pitch)
// (Dim numbers, trained by mean squared error on relevance/ targets: the pitched movie's CF item
// embedding), and scored as the CF model scores an item: user_embedding · q (the user's and item's
// biases do not depend on the pitch's content, so they are left out).

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/reward/appeal.hpp"
#include "p4lm/reward/head.hpp"
#include "p4lm/reward/model_file.hpp"
#include "p4lm/reward/reward_model.hpp"
#include "p4lm/reward/text_features.hpp"

namespace p4lm::reward {

template <Backend B = backend::cpu, int Dim = 32>
class PreferenceRelevance {
  static_assert(std::is_same_v<B, backend::cpu>,
                "reward::PreferenceRelevance: only the CPU backend is implemented");
  static_assert(Dim > 0, "reward::PreferenceRelevance: Dim (the CF width) must be positive");

 public:
  using backend_type = B;
  static constexpr std::string_view name() { return "preference_relevance"; }
  static constexpr unsigned reads = reads_pitch | reads_user_embedding;
  static constexpr std::size_t cf_width = Dim;

  PreferenceRelevance(std::shared_ptr<TextFeatures> f, MlpHead<float> head)
      : f_(std::move(f)), head_(std::move(head)) {
    if (head_.out() != std::size_t(Dim))
      fail<InvalidArgument>("PreferenceRelevance<", Dim, ">: the head maps to ", head_.out(), " numbers");
  }
  static PreferenceRelevance load(const std::filesystem::path& path, std::shared_ptr<TextFeatures> f) {
    return PreferenceRelevance(std::move(f), load_head(path, name(), cf_width));
  }
  void save(const std::filesystem::path& path) const { save_head(path, name(), cf_width, head_); }
  MlpHead<float>& head() noexcept { return head_; }

  // (n, Dim): the pitches mapped into the CF item space.
  std::vector<float> item_vectors(const std::vector<std::string>& pitches) {
    const auto x = text_rows(*f_, pitches);
    return head_.forward(x.data(), pitches.size());
  }
  std::vector<double> score(std::span<const Rollout> batch) {
    std::vector<std::string> t;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      check_rollout(batch[i], reads, name(), "rollout " + std::to_string(i));
      if (batch[i].user_embedding.size() != std::size_t(Dim))
        fail<InvalidArgument>("reward ", name(), ": rollout ", i, ": field 'user_embedding' has ",
                              batch[i].user_embedding.size(), " numbers, the model's CF width is ", Dim);
      t.emplace_back(batch[i].pitch);
    }
    const auto q = item_vectors(t);
    std::vector<double> out(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      double s = 0;
      for (int k = 0; k < Dim; ++k) s += double(batch[i].user_embedding[k]) * q[i * Dim + k];
      out[i] = s;
    }
    return out;
  }

 private:
  std::shared_ptr<TextFeatures> f_;
  MlpHead<float> head_;
};

}  // namespace p4lm::reward
