#pragma once
// Precision: is the pitch factually consistent with the movie? An NLI classifier over (premise = the
// movie's facts and overview, hypothesis = one pitch sentence): the sentence's tokens are aligned to
// the premise's (reward/token_alignment.hpp), the head scores each token's alignment row as evidence
// of contradiction, and the entailment logit is the soft minimum -log Σ_t exp(head(row_t)); trained
// on nli/ with the logistic loss (TokenNliObjective).
//
// A pitch's score is the MINIMUM over its sentences of P(entailment): one false claim makes a pitch
// imprecise however many true sentences surround it; a mean would let the policy dilute a
// hallucination with filler, a product would punish length. Scores are in [0, 1].

#include <cmath>
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

namespace p4lm::reward {

template <Backend B = backend::cpu>
class Precision {
  static_assert(std::is_same_v<B, backend::cpu>, "reward::Precision: only the CPU backend is implemented");

 public:
  using backend_type = B;
  static constexpr std::string_view name() { return "precision"; }
  static constexpr unsigned reads = reads_pitch | reads_premise;
  static constexpr std::size_t cf_width = 0;

  // The head's input width for an encoder of width d (one token-alignment row).
  static constexpr std::size_t head_width(std::size_t d) { return alignment_width(d); }

  Precision(std::shared_ptr<TextFeatures> f, MlpHead<float> head) : f_(std::move(f)), head_(std::move(head)) {
    if (head_.in() != head_width(f_->dim()) || head_.out() != 1)
      fail<InvalidArgument>("reward::Precision: the head maps ", head_.in(), " -> ", head_.out(),
                            " numbers; token-alignment rows of a ", f_->dim(), "-wide encoder need ",
                            head_width(f_->dim()), " -> 1 (a model file of an older p4lm: retrain it)");
  }
  static Precision load(const std::filesystem::path& path, std::shared_ptr<TextFeatures> f) {
    auto head = load_head(path, name(), cf_width);
    if (head.in() != head_width(f->dim()))
      throw ParseError(path, 0, "in",
                       "the head reads " + std::to_string(head.in()) + " numbers, token-alignment rows of " +
                           f->model_dir().filename().string() + " have " +
                           std::to_string(head_width(f->dim())) +
                           " (a precision model of an older p4lm or another encoder: retrain it)");
    return Precision(std::move(f), std::move(head));
  }
  void save(const std::filesystem::path& path) const { save_head(path, name(), cf_width, head_); }
  MlpHead<float>& head() noexcept { return head_; }

  // Entailment logits of (premise[i], hypothesis[i]).
  std::vector<float> logits(const std::vector<std::string>& premise,
                            const std::vector<std::string>& hypothesis) {
    const auto a = f_->alignment(premise, hypothesis);
    return soft_min_logits(head_.forward(a.rows.data(), a.offsets.back()), a.offsets);
  }
  std::vector<double> score(std::span<const Rollout> batch) {
    std::vector<std::string> prem, hyp;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      check_rollout(batch[i], reads, name(), "rollout " + std::to_string(i));
      for (auto& s : split_sentences(batch[i].pitch)) {
        prem.emplace_back(batch[i].premise);
        hyp.push_back(std::move(s));
        owner.push_back(i);
      }
    }
    std::vector<double> out(batch.size(), 1.0);
    const auto z = logits(prem, hyp);
    for (std::size_t k = 0; k < z.size(); ++k)
      out[owner[k]] = std::min(out[owner[k]], 1.0 / (1.0 + std::exp(-double(z[k]))));
    return out;
  }

 private:
  std::shared_ptr<TextFeatures> f_;
  MlpHead<float> head_;
};

}  // namespace p4lm::reward
