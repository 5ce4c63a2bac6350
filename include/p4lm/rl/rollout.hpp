#pragma once
// Rollouts: a batch of prompts sampled by the policy with the batched KV-cache decoder, then scored
// by ONE batched forward of the policy (log-probs, entropies, values from the value head on the same
// hidden states) and ONE of the frozen reference, then by the reward on the finished samples.
//
//   rl::RolloutCollector<Policy> collect(policy, reference);
//   rl::Rollout<float> r;
//   collect.collect(r, prompts, {.max_new_tokens = 48, .eos = 2, .missing_eos_penalty = 1.0}, reward, &head);
//   r.logprobs, r.ref_logprobs, r.values, r.entropy, r.mask      (B, R): one column per response token
//
// Layout. Sample b is [prefix (P soft tokens) | prompt (Lp_b ids) | response (Lr_b ids)], right-padded;
// response token k is predicted at position P + Lp_b + k - 1 of the forward pass. Per-token arrays
// have R = max_b Lr_b columns; mask is 1 on the Lr_b real tokens of row b.
//
// The log-probs PPO's ratio starts from are the training forward's, not the decoder's: the two agree
// to rounding (model/generate.hpp), and the update recomputes them with this same forward.
// A sample that never emits EOS within max_new_tokens loses missing_eos_penalty from its score; one
// that ends before min_response_length tokens loses short_response_penalty (a length floor the reward
// itself does not give: without it PPO can learn that a one-sentence pitch has nothing to contradict);
// every sample loses repeated_ngram_penalty times the share of its token n-grams said before
// (text/repetition.hpp), which keeps PPO from meeting the floor by repeating a sentence.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/reward_function.hpp"
#include "p4lm/rl/value_head.hpp"
#include "p4lm/text/repetition.hpp"

namespace p4lm::rl {

struct Prompt {
  std::size_t key = 0;              // what the policy's prefix and the reward look up (user, movie)
  std::vector<std::int32_t> ids{};  // the prompt's tokens (BOS first unless a prefix stands before it)
};

struct RolloutOptions {
  std::size_t max_new_tokens = 64;
  std::optional<std::int32_t> eos{};
  double missing_eos_penalty = 0;       // subtracted from the score of a sample without EOS (needs eos)
  std::size_t min_response_length = 0;  // tokens before EOS under which a sample counts as short
  double short_response_penalty = 0;    // subtracted from the score of a short sample (needs eos)
  std::size_t repeated_ngram_size = 4;  // n of the repeated-n-gram share (>= 1)
  double repeated_ngram_penalty = 0;    // times that share, subtracted from every sample's score
  std::uint64_t seed = 0;               // sample b of a rollout draws from Rng(seed, b)
};

template <class T = float>
struct Rollout {
  std::vector<Prompt> prompts;
  std::vector<std::vector<std::int32_t>> responses;  // EOS included when the sample ended
  std::vector<bool> ended;
  std::vector<double> raw_scores;       // the reward's scores
  std::vector<double> scores;           // after the missing-EOS, short-response and repetition penalties
  std::vector<double> repeated_shares;  // each response's repeated n-gram share (EOS left out)
  std::size_t prefix_len = 0, text_len = 0, response_len = 0;
  // (B, R), 0 on padding. The first five come from collect(); the algorithm fills the rest.
  CpuTensor<T> mask, logprobs, ref_logprobs, values, entropy;
  CpuTensor<T> kl, rewards, advantages, returns;
  // Seconds spent in each part of the last collect().
  double time_generate = 0, time_policy = 0, time_reference = 0, time_score = 0;

  std::size_t size() const noexcept { return prompts.size(); }
  // Position of response token k of row b in the forward pass.
  std::size_t position(std::size_t b, std::size_t k) const {
    return prefix_len + prompts[b].ids.size() + k - 1;
  }
};

// Rows of a rollout laid out as one forward pass: ids (n, T), targets (n, P + T), lengths (n), and
// the maps between per-position (n, P + T) and per-token (n, R) arrays.
template <class T = float>
class SequenceBatch {
 public:
  using View = TensorView<backend::cpu, T>;

  void build(const Rollout<T>& r, std::span<const std::size_t> rows) {
    r_ = &r;
    rows_.assign(rows.begin(), rows.end());
    keys_.clear();
    const std::size_t n = rows.size(), Tn = r.text_len, S = r.prefix_len + Tn;
    ids_.resize(Shape{n, Tn}, 0);
    targets_.resize(Shape{n, S}, ops::ignore_index_default);
    lengths_.resize(Shape{n});
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t b = rows[i];
      const auto& prompt = r.prompts[b].ids;
      const auto& resp = r.responses[b];
      keys_.push_back(r.prompts[b].key);
      std::int32_t* id = ids_.data() + i * Tn;
      std::copy(prompt.begin(), prompt.end(), id);
      std::copy(resp.begin(), resp.end(), id + prompt.size());
      lengths_.data()[i] = static_cast<std::int32_t>(prompt.size() + resp.size());
      for (std::size_t k = 0; k < resp.size(); ++k) targets_.data()[i * S + r.position(b, k)] = resp[k];
    }
  }

  LMInput<T> input(const View& prefix) const {
    return {.ids = ids_.view(), .prefix = prefix, .targets = targets_.view(), .lengths = lengths_.view()};
  }
  std::span<const std::size_t> keys() const noexcept { return keys_; }
  std::span<const std::size_t> rows() const noexcept { return rows_; }
  std::size_t positions() const noexcept { return r_->prefix_len + r_->text_len; }

  // per_position (n, S) -> out (n, R) at the response tokens, 0 elsewhere.
  void gather(View out, const View& per_position) const {
    const std::size_t n = rows_.size(), S = positions(), R = r_->response_len;
    expect_shape("SequenceBatch::gather: per_position", per_position.shape(), Shape{n, S});
    expect_shape("SequenceBatch::gather: out", out.shape(), Shape{n, R});
    std::fill(out.data(), out.data() + out.numel(), T(0));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < r_->responses[rows_[i]].size(); ++k)
        out.data()[i * R + k] = per_position.data()[i * S + r_->position(rows_[i], k)];
  }
  // per_token (n, R) -> out (n, S) at the response positions, 0 elsewhere.
  void scatter(View out, const View& per_token) const {
    const std::size_t n = rows_.size(), S = positions(), R = r_->response_len;
    expect_shape("SequenceBatch::scatter: per_token", per_token.shape(), Shape{n, R});
    expect_shape("SequenceBatch::scatter: out", out.shape(), Shape{n, S});
    std::fill(out.data(), out.data() + out.numel(), T(0));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < r_->responses[rows_[i]].size(); ++k)
        out.data()[i * S + r_->position(rows_[i], k)] = per_token.data()[i * R + k];
  }
  // Rows `rows` of a per-token array of the whole rollout (B, R) -> out (n, R).
  void take(View out, const View& whole) const {
    const std::size_t R = r_->response_len;
    expect_shape("SequenceBatch::take: out", out.shape(), Shape{rows_.size(), R});
    for (std::size_t i = 0; i < rows_.size(); ++i)
      std::copy(whole.data() + rows_[i] * R, whole.data() + (rows_[i] + 1) * R, out.data() + i * R);
  }

 private:
  const Rollout<T>* r_ = nullptr;
  std::vector<std::size_t> rows_, keys_;
  CpuTensor<std::int32_t> ids_, targets_, lengths_;
};

template <Policy P>
class RolloutCollector {
 public:
  using T = typename P::value_type;
  using View = TensorView<backend::cpu, T>;

  RolloutCollector(P& policy, P& reference) : policy_(policy), reference_(reference), gen_(policy.lm()) {
    if (policy.prefix_length() != reference.prefix_length())
      fail<InvalidArgument>("RolloutCollector: the policy has ", policy.prefix_length(),
                            " soft tokens, the reference ", reference.prefix_length());
  }
  RolloutCollector(const RolloutCollector&) = delete;
  RolloutCollector& operator=(const RolloutCollector&) = delete;

  // Samples every prompt, scores the samples and fills r (see the header comment). head may be null
  // (no values needed, e.g. RLOO).
  template <class Reward>
  void collect(Rollout<T>& r, std::span<const Prompt> prompts, const RolloutOptions& o, Reward& reward,
               const ValueHead<T>* head = nullptr) {
    static_assert(check_reward_function<Reward>());
    using clock = std::chrono::steady_clock;
    auto seconds = [](clock::time_point a) {
      return std::chrono::duration<double>(clock::now() - a).count();
    };
    const std::size_t B = prompts.size(), Pn = policy_.prefix_length(), C = policy_.lm().config().d_model;
    if (B == 0) fail<InvalidArgument>("rollout: no prompts");
    if (o.max_new_tokens == 0) fail<InvalidArgument>("rollout: max_new_tokens must be >= 1");
    if (o.missing_eos_penalty != 0 && !o.eos)
      fail<InvalidArgument>("rollout: missing_eos_penalty ", o.missing_eos_penalty, " needs an eos token");
    if (o.short_response_penalty != 0 && !o.eos)
      fail<InvalidArgument>("rollout: short_response_penalty ", o.short_response_penalty,
                            " needs an eos token");
    if (o.repeated_ngram_size == 0) fail<InvalidArgument>("rollout: repeated_ngram_size must be >= 1");
    r.prompts.assign(prompts.begin(), prompts.end());
    r.prefix_len = Pn;
    keys_.clear();
    std::vector<std::vector<std::int32_t>> ids;
    for (const auto& p : prompts) keys_.push_back(p.key), ids.push_back(p.ids);
    View prefix{};
    if (Pn) {
      prefix_.resize(Shape{B, Pn, C});
      policy_.write_prefix(prefix_.view(), keys_);
      prefix = prefix_.view();
    }

    // 1. Sampling: every prompt advances together through the KV cache.
    auto t0 = clock::now();
    SamplingOptions so;
    so.max_new_tokens = o.max_new_tokens;
    so.temperature = 1.0;  // the ratio and the KL assume samples from the policy itself
    so.eos = o.eos;
    so.seed = o.seed;
    Generation g = gen_.generate(ids, so, prefix);
    r.responses = std::move(g.tokens);
    r.ended = std::move(g.stopped);
    r.time_generate = seconds(t0);
    r.response_len = r.text_len = 0;
    for (std::size_t b = 0; b < B; ++b) {
      r.response_len = std::max(r.response_len, r.responses[b].size());
      r.text_len = std::max(r.text_len, r.prompts[b].ids.size() + r.responses[b].size());
    }
    const std::size_t R = r.response_len;
    for (auto* t : {&r.mask, &r.logprobs, &r.ref_logprobs, &r.values, &r.entropy, &r.kl, &r.rewards,
                    &r.advantages, &r.returns})
      t->resize(Shape{B, R}, T(0));
    for (std::size_t b = 0; b < B; ++b)
      std::fill(r.mask.data() + b * R, r.mask.data() + b * R + r.responses[b].size(), T(1));

    // 2. The policy: one forward over the whole batch gives log-probs, entropies and hidden states.
    t0 = clock::now();
    all_rows_.resize(B);
    for (std::size_t b = 0; b < B; ++b) all_rows_[b] = b;
    batch_.build(r, all_rows_);
    const std::size_t S = batch_.positions();
    pos_.resize(Shape{B, S});
    pos2_.resize(Shape{B, S});
    policy_.lm().forward_logprobs(batch_.input(prefix), pos_.view(), pos2_.view());
    batch_.gather(r.logprobs.view(), pos_.view());
    batch_.gather(r.entropy.view(), pos2_.view());
    if (head) {
      head->forward(pos_.view(), policy_.lm().hidden());
      batch_.gather(r.values.view(), pos_.view());
    }
    r.time_policy = seconds(t0);

    // 3. The frozen reference: one forward.
    t0 = clock::now();
    if (Pn) reference_.write_prefix(prefix_.view(), keys_);
    reference_.lm().forward_logprobs(batch_.input(prefix), pos_.view());
    batch_.gather(r.ref_logprobs.view(), pos_.view());
    r.time_reference = seconds(t0);
    check_finite(r);

    // 4. The reward on the finished samples.
    t0 = clock::now();
    samples_.clear();
    for (std::size_t b = 0; b < B; ++b)
      samples_.push_back({r.prompts[b].key, r.prompts[b].ids, r.responses[b], static_cast<bool>(r.ended[b])});
    r.raw_scores = reward(std::span<const Sample>(samples_));
    if (r.raw_scores.size() != B)
      fail<InvalidArgument>("rollout: the reward returned ", r.raw_scores.size(), " scores for ", B,
                            " samples");
    r.scores = r.raw_scores;
    r.repeated_shares.assign(B, 0.0);
    for (std::size_t b = 0; b < B; ++b) {
      if (!std::isfinite(r.scores[b]))
        fail<InvalidArgument>("rollout: the reward of sample ", b, " (prompt key ", r.prompts[b].key, ") is ",
                              r.scores[b]);
      if (o.eos && !r.ended[b]) r.scores[b] -= o.missing_eos_penalty;
      // An ended response holds its EOS: the pitch is one token shorter.
      if (o.eos && r.ended[b] && r.responses[b].size() - 1 < o.min_response_length)
        r.scores[b] -= o.short_response_penalty;
      const std::span<const std::int32_t> said(r.responses[b].data(), r.responses[b].size() - r.ended[b]);
      r.repeated_shares[b] = text::repeated_ngram_share(said, o.repeated_ngram_size);
      r.scores[b] -= o.repeated_ngram_penalty * r.repeated_shares[b];
    }
    r.time_score = seconds(t0);
  }

 private:
  static void check_finite(const Rollout<T>& r) {
    const std::size_t R = r.response_len;
    auto check = [&](const CpuTensor<T>& t, const char* what) {
      for (std::size_t i = 0; i < t.numel(); ++i)
        if (!std::isfinite(static_cast<double>(t.data()[i])))
          fail<Error>("rollout: ", what, " of sample ", i / R, ", token ", i % R, " is ", t.data()[i]);
    };
    check(r.logprobs, "the policy's log-prob");
    check(r.ref_logprobs, "the reference's log-prob");
    check(r.values, "the value");
  }

  P& policy_;
  P& reference_;
  Generator<typename P::LM> gen_;
  SequenceBatch<T> batch_;
  std::vector<std::size_t> keys_, all_rows_;
  std::vector<Sample> samples_;
  CpuTensor<T> prefix_, pos_, pos2_;
};

}  // namespace p4lm::rl
