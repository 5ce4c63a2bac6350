#pragma once
// Continuations of prompts by a prefixed policy (rl::PrefixedPolicy, e.g. the P4LM pitch policy).
// Greedy ones are what evaluations decode, so that a row of a table is a function of the model alone;
// sampled ones are what the RL stage fits its reward statistics on.
//
//   auto g = p4lm::rl::greedy_generate(policy, prompts, {.max_new_tokens = 64, .eos = codec.eos});
//   // g.tokens[i], g.stopped[i]
//   auto s = p4lm::rl::sample_generate(policy, prompts, {.max_new_tokens = 64, .eos = eos, .seed = 7});

#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "p4lm/model/generate.hpp"
#include "p4lm/rl/rollout.hpp"

namespace p4lm::rl {

// `batch` sequences at a time through the batched KV-cache decoder (one weight read per step for all
// of them), with the sampling settings `s` (chunk k draws from seed s.seed + k). Each sequence's
// tokens end with EOS when it was emitted.
template <class Policy>
Generation sample_generate(Policy& policy, std::span<const rl::Prompt> prompts, SamplingOptions s,
                           std::size_t batch = 16) {
  Generation all;
  const std::size_t P = policy.prefix_length(), D = policy.lm().config().d_model;
  const std::uint64_t seed = s.seed;
  for (std::size_t first = 0; first < prompts.size(); first += batch) {
    const std::size_t B = std::min(batch, prompts.size() - first);
    CpuTensor<float> prefix(Shape{B, P, D});
    std::vector<std::size_t> keys;
    std::vector<std::vector<std::int32_t>> ids;
    for (std::size_t b = 0; b < B; ++b)
      keys.push_back(prompts[first + b].key), ids.push_back(prompts[first + b].ids);
    policy.write_prefix(prefix.view(), keys);
    s.seed = seed + first / batch;
    Generator<std::decay_t<decltype(policy.lm())>> gen(policy.lm());
    all.append(gen.generate(ids, s, prefix.view()));
  }
  return all;
}

// Greedy continuations: the settings `s` at temperature 0 (its top-k, top-p and seed play no part;
// its max_new_tokens, eos and no_repeat_ngram_size do), `batch` sequences at a time.
template <class Policy>
Generation greedy_generate(Policy& policy, std::span<const rl::Prompt> prompts, SamplingOptions s,
                           std::size_t batch = 16) {
  s.temperature = 0;
  return sample_generate(policy, prompts, s, batch);
}

}  // namespace p4lm::rl
