#pragma once
// Autoregressive generation with a KV cache, for a batch of prompts of different lengths.
//
//   p4lm::Generator gen(model);
//   auto out = gen.generate(prompts, {.max_new_tokens = 64, .temperature = 0.7, .top_p = 0.9,
//                                     .eos = tok.eos_id(), .seed = 42});
//   out.tokens[b], out.logprobs[b]        // new token ids of prompt b and their log-probabilities
//
// Every sequence of the batch advances together, one weight read per step for the whole batch
// (that is where PPO rollouts get their speed: decoding one sequence is memory-bound). A sequence
// that emits `eos` stops (the EOS id is its last token); the others go on. An optional prefix
// (B, P, C) of soft tokens goes before each prompt, as in CausalLM::forward.
//
// Sampling: temperature 0 is greedy (first maximum, as llama2.c's argmax); otherwise the logits are
// divided by the temperature, cut to the top_k most likely tokens (0: no cut), then to the smallest
// set whose probability reaches top_p (1: no cut), and a token is drawn from what is left: after a cut
// the draw walks the kept tokens from the most likely down (equal logits: lower id first), without one
// in id order. Sequence b draws from its own Philox stream Rng(seed, b), one uniform per sampled token,
// so results do not depend on the thread count. With a CUDA model the same draw runs on the device
// (backend/cuda/sampling.cuh, thrust) with the same uniforms: the same tokens from the same logits,
// and only the picks come back to the host.
// The returned log-probability of a token is log softmax(logits / temperature) (temperature 0:
// log softmax(logits)), before the top-k/top-p cut: the policy's own probability, what PPO's ratio
// and KL use.
//
// no_repeat_ngram_size n > 0 refuses any token that would make a sequence's new tokens repeat an
// n-gram of their own (text::repeated_ngram_completions; the prompt is left out, so a pitch may quote
// the title or the genres its prompt holds). The refused tokens' logits are set to -inf before the
// draw on either backend, so the log-probabilities are then those of the distribution without them:
// a decoding setting for evaluation, not for PPO rollouts. A step at which every token would be
// refused refuses none.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include <omp.h>
#include <xsimd/xsimd.hpp>

#include "p4lm/backend/tensors.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/shape_check.hpp"
#include "p4lm/model/kv_cache.hpp"
#include "p4lm/ops/softmax.hpp"
#include "p4lm/text/repetition.hpp"

#ifdef __CUDACC__
#include "p4lm/backend/cuda/sampling.cuh"
#endif

namespace p4lm {

struct SamplingOptions {
  std::size_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy
  std::size_t top_k = 0;     // 0: no top-k cut
  double top_p = 1.0;        // 1: no nucleus cut
  std::optional<std::int32_t> eos{};
  std::uint64_t seed = 0;
  std::size_t no_repeat_ngram_size = 0;  // 0: no n-gram ban
};

struct Generation {
  std::vector<std::vector<std::int32_t>> tokens;  // new tokens per sequence (EOS included when hit)
  std::vector<std::vector<float>> logprobs;       // log-probability of each new token (see above)
  std::vector<bool> stopped;                      // the sequence emitted EOS

  // Appends another batch's sequences after these (batched decoding in chunks).
  void append(Generation&& other) {
    for (std::size_t b = 0; b < other.tokens.size(); ++b) {
      tokens.push_back(std::move(other.tokens[b]));
      logprobs.push_back(std::move(other.logprobs[b]));
      stopped.push_back(other.stopped[b]);
    }
  }
};

namespace detail {

// First index of the largest logit (llama2.c's argmax), vectorised: the max, then a scan for it.
template <class T>
std::size_t first_argmax(const T* x, std::size_t n) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t L = Batch::size;
  T mx = -std::numeric_limits<T>::infinity();
  std::size_t i = 0;
  if (n >= L) {
    Batch acc = Batch::load_unaligned(x);
    for (i = L; i + L <= n; i += L) acc = xsimd::max(acc, Batch::load_unaligned(x + i));
    alignas(64) T lanes[L];
    acc.store_aligned(lanes);
    for (T v : lanes) mx = std::max(mx, v);
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  for (i = 0; i < n; ++i)
    if (x[i] == mx) return i;
  return 0;  // every logit NaN
}

// log Σ_j exp((x[j] - mx) inv_t) in double, four lanes at a time: the scalar std::exp loop over a
// 32000-word vocabulary cost as much as the model's own products at small batch.
template <class T>
double log_sum_exp(const T* x, std::size_t n, double mx, double inv_t) {
  using Batch = xsimd::batch<double>;
  constexpr std::size_t L = Batch::size;
  Batch acc(0.0);
  std::size_t i = 0;
  alignas(64) double buf[L];
  for (; i + L <= n; i += L) {
    for (std::size_t l = 0; l < L; ++l) buf[l] = static_cast<double>(x[i + l]);
    acc += xsimd::exp((Batch::load_aligned(buf) - mx) * inv_t);
  }
  double sum = xsimd::hadd(acc);
  for (; i < n; ++i) sum += std::exp((static_cast<double>(x[i]) - mx) * inv_t);
  return std::log(sum);
}

}  // namespace detail

// Picks the next token from one row of logits; writes its log-probability. `scratch` is reused.
template <class T>
std::int32_t sample_token(const T* logits, std::size_t V, const SamplingOptions& o, Rng& rng, float& logprob,
                          std::vector<std::pair<double, std::int32_t>>& scratch) {
  const bool greedy = o.temperature <= 0;
  const double inv_t = greedy ? 1.0 : 1.0 / o.temperature;
  const std::size_t arg = detail::first_argmax(logits, V);
  const double mx = static_cast<double>(logits[arg]);
  // The log-probability of token j. At T = 1 (greedy decoding, plain sampling) in float, exactly as
  // ops::logprob_gather_forward computes it: a rollout's log-probs are the training pass's on the same
  // logits, and float exps cost a fraction of double ones. Other temperatures scale first, in double.
  std::optional<ops::MaxSumExp<T>> row;
  if constexpr (std::is_same_v<T, float>)
    if (inv_t == 1.0) row = ops::row_max_sum_exp(logits, V);
  const double lse = row ? 0.0 : detail::log_sum_exp(logits, V, mx, inv_t);  // of (logits - mx) / T
  auto logp = [&](std::size_t j) {
    if (row) return static_cast<float>((logits[j] - row->max) - T(std::log(row->sum)));
    return static_cast<float>((double(logits[j]) - mx) * inv_t - lse);
  };
  if (greedy) {
    logprob = logp(arg);
    return static_cast<std::int32_t>(arg);
  }
  scratch.resize(V);
  for (std::size_t j = 0; j < V; ++j)
    scratch[j] = {(double(logits[j]) - mx) * inv_t, static_cast<std::int32_t>(j)};
  auto desc = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::size_t n = V;
  if (o.top_k > 0 && o.top_k < V) {
    std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(o.top_k), scratch.end(),
                     desc);
    n = o.top_k;
  }
  // After a cut the kept tokens are drawn from in descending order (nth_element leaves them in an
  // order of its own, which a GPU sampler could not reproduce); without one in id order.
  if (n < V || o.top_p < 1.0)
    std::sort(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n), desc);
  if (o.top_p < 1.0) {
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) total += std::exp(scratch[i].first);
    double cum = 0;
    std::size_t keep = 0;
    while (keep < n) {
      cum += std::exp(scratch[keep].first) / total;
      ++keep;
      if (cum >= o.top_p) break;
    }
    n = std::max<std::size_t>(keep, 1);
  }
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) total += std::exp(scratch[i].first);
  const double u = rng.uniform_double() * total;
  double acc = 0;
  std::int32_t pick = scratch[n - 1].second;
  for (std::size_t i = 0; i < n; ++i) {
    acc += std::exp(scratch[i].first);
    if (u < acc) {
      pick = scratch[i].second;
      break;
    }
  }
  logprob = logp(static_cast<std::size_t>(pick));
  return pick;
}

namespace detail {
// The device sampler a Generator on backend B holds: none on the CPU.
template <class B>
struct DeviceSampling {};
#ifdef __CUDACC__
// logits[at[i]] = value for every i (the refused tokens of no_repeat_ngram_size).
template <class T>
struct SetAt {
  T* logits;
  const std::int64_t* at;
  T value;
  __device__ void operator()(std::size_t i) const { logits[at[i]] = value; }
};
template <>
struct DeviceSampling<backend::cuda> {
  cuda::TokenSampler sampler;
  std::vector<double> uniforms;
  std::vector<std::uint8_t> active;
  Tensor<backend::cuda, std::int64_t> refused_at;
  // One upload of the flat indices and one kernel a step, queued on the stream the logits come from.
  template <class T>
  void set_at(T* logits, std::vector<std::int64_t>& at, T value) {
    refused_at.resize(Shape{at.size()});
    copy(refused_at.view(), TensorView<backend::cpu, std::int64_t>(at.data(), Shape{at.size()}));
    cuda::detail::for_each_index("no_repeat_ngram_size", at.size(),
                                 SetAt<T>{logits, refused_at.data(), value});
  }
};
#endif
}  // namespace detail

// Holds the KV cache and buffers between calls, so repeated rollouts allocate nothing new. On a device
// backend the model runs there and so does the sampling (cuda::TokenSampler): each step copies back
// the B picks and their log-probabilities, not the logits.
template <class Model>
class Generator {
 public:
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  explicit Generator(Model& model) : model_(model) {}

  Generation generate(std::span<const std::vector<std::int32_t>> prompts, const SamplingOptions& o,
                      const TensorView<B, T>& prefix = {}) {
    const std::size_t Bn = prompts.size();
    if (Bn == 0) return {};
    const std::size_t P = is_given(prefix) ? prefix.dim(1) : 0;
    std::size_t longest = 0;
    for (std::size_t b = 0; b < Bn; ++b) {
      if (prompts[b].empty() && P == 0)
        fail<InvalidArgument>("generate: prompt ", b, " is empty and there is no prefix (start it with BOS)");
      longest = std::max(longest, prompts[b].size());
    }
    const std::size_t capacity = P + longest + o.max_new_tokens;
    if (capacity > model_.config().max_seq)
      fail<InvalidArgument>("generate: prefix ", P, " + prompt ", longest, " + max_new_tokens ",
                            o.max_new_tokens, " exceed the model's max_seq ", model_.config().max_seq);
    cache_.reserve(model_.config(), Bn, capacity);

    Generation out;
    out.tokens.assign(Bn, {});
    out.logprobs.assign(Bn, {});
    out.stopped.assign(Bn, false);
    std::vector<Rng> rngs;
    for (std::size_t b = 0; b < Bn; ++b) rngs.emplace_back(o.seed, b);

    // Prefill: every prompt (right-padded) in one pass.
    host_ids_.resize(Shape{Bn, std::max<std::size_t>(longest, 0)});
    host_ids_.zero();
    new_len_.assign(Bn, 0);
    for (std::size_t b = 0; b < Bn; ++b) {
      std::copy(prompts[b].begin(), prompts[b].end(), host_ids_.data() + b * longest);
      new_len_[b] = static_cast<std::int32_t>(prompts[b].size());
    }
    ids_.resize(host_ids_.shape());
    copy(ids_.view(), host_ids_.view());
    TensorView<B, T> logits = model_.forward_cached(cache_, ids_.view(), new_len_, prefix);
    const std::size_t V = model_.config().vocab_size;
    step_ids_.resize(Shape{Bn, 1});
    host_step_.resize(Shape{Bn, 1});
    for (std::size_t step = 0; step < o.max_new_tokens; ++step) {
      picks_.resize(Bn);
      pick_logprobs_.resize(Bn);
      if (o.no_repeat_ngram_size > 0) refuse_repeated_ngrams(logits, V, out, o.no_repeat_ngram_size);
      if constexpr (B::is_device) {
        sample_on_device(logits, o, rngs, out.stopped);
      } else {
        // Rows are independent (each has its own Rng), so they run in parallel.
        scratches_.resize(static_cast<std::size_t>(omp_get_max_threads()));
        const auto rows = static_cast<std::ptrdiff_t>(Bn);
#pragma omp parallel for schedule(static) if (Bn > 1 && Bn * V >= (std::size_t{1} << 16))
        for (std::ptrdiff_t r = 0; r < rows; ++r) {
          const auto b = static_cast<std::size_t>(r);
          if (out.stopped[b]) continue;
          picks_[b] = sample_token(logits.data() + b * V, V, o, rngs[b], pick_logprobs_[b],
                                   scratches_[static_cast<std::size_t>(omp_get_thread_num())]);
        }
      }
      bool any = false;
      for (std::size_t b = 0; b < Bn; ++b) {
        new_len_[b] = 0;
        if (out.stopped[b]) continue;
        const std::int32_t tok = picks_[b];
        out.tokens[b].push_back(tok);
        out.logprobs[b].push_back(pick_logprobs_[b]);
        host_step_.data()[b] = tok;
        if (o.eos && tok == *o.eos) {
          out.stopped[b] = true;
          continue;
        }
        new_len_[b] = 1;
        any = true;
      }
      if (!any || step + 1 == o.max_new_tokens) break;
      copy(step_ids_.view(), host_step_.view());
      logits = model_.forward_cached(cache_, step_ids_.view(), new_len_);
    }
    return out;
  }

  Generation generate(const std::vector<std::vector<std::int32_t>>& prompts, const SamplingOptions& o,
                      const TensorView<B, T>& prefix = {}) {
    return generate(std::span<const std::vector<std::int32_t>>(prompts), o, prefix);
  }

 private:
  // Sets to -inf the logits of the tokens that would make a running sequence repeat an n-gram of its
  // new tokens (see above): every row's flat indices first, then one write (on a device, one upload).
  void refuse_repeated_ngrams(TensorView<B, T> logits, std::size_t V, const Generation& out, std::size_t n) {
    refused_at_.clear();
    for (std::size_t b = 0; b < out.tokens.size(); ++b) {
      if (out.stopped[b]) continue;
      text::repeated_ngram_completions(out.tokens[b], n, refused_);
      std::sort(refused_.begin(), refused_.end());
      refused_.erase(std::unique(refused_.begin(), refused_.end()), refused_.end());
      if (refused_.size() >= V) continue;  // every token refused: refuse none
      for (const std::int32_t t : refused_) refused_at_.push_back(static_cast<std::int64_t>(b * V) + t);
    }
    if (refused_at_.empty()) return;
    const T minus_inf = -std::numeric_limits<T>::infinity();
    if constexpr (B::is_device)
      device_.set_at(logits.data(), refused_at_, minus_inf);
    else
      for (const std::int64_t i : refused_at_) logits.data()[i] = minus_inf;
  }

  // The device path of one step: the uniforms come from the same Rng streams, one per sampled token,
  // as sample_token draws them, so the device picks the CPU's tokens.
  void sample_on_device(const TensorView<B, T>& logits, const SamplingOptions& o, std::vector<Rng>& rngs,
                        const std::vector<bool>& stopped) {
    const std::size_t Bn = rngs.size();
    auto& d = device_;
    d.uniforms.assign(Bn, 0.0);
    d.active.assign(Bn, 0);
    for (std::size_t b = 0; b < Bn; ++b) {
      if (stopped[b]) continue;
      d.active[b] = 1;
      if (o.temperature > 0) d.uniforms[b] = rngs[b].uniform_double();
    }
    d.sampler.sample(logits.reshaped(Shape{Bn, logits.numel() / Bn}), {o.temperature, o.top_k, o.top_p},
                     d.uniforms, d.active, picks_, pick_logprobs_);
  }

  Model& model_;
  KVCache<T, B> cache_;
  Tensor<B, std::int32_t> ids_, step_ids_;
  CpuTensor<std::int32_t> host_ids_, host_step_;
  detail::DeviceSampling<B> device_;
  std::vector<std::int32_t> new_len_;
  std::vector<std::int32_t> picks_;
  std::vector<float> pick_logprobs_;
  std::vector<std::int32_t> refused_;     // one row's refused tokens
  std::vector<std::int64_t> refused_at_;  // every row's, as flat indices into the logits
  std::vector<std::vector<std::pair<double, std::int32_t>>> scratches_;  // one per OpenMP thread
};

// One-off generation (allocates a fresh cache; keep a Generator to reuse it).
template <class Model>
Generation generate(Model& model, const std::vector<std::vector<std::int32_t>>& prompts,
                    const SamplingOptions& o,
                    const TensorView<typename Model::backend_type, typename Model::value_type>& prefix = {}) {
  Generator<Model> gen(model);
  return gen.generate(prompts, o, prefix);
}

}  // namespace p4lm
