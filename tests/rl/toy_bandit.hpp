#pragma once
// The RL tests' toy problem: a bandit-sized LM (8 tokens, one layer; at initialisation every token
// is about equally likely) and a reward counting one "good" token, whose optimum is a response made
// only of that token. Shared by the RL tests.

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/rl/reward_function.hpp"

namespace p4lm::rl_test {

constexpr std::int32_t kGood = 5, kBos = 1;

// Weights drawn with standard deviation `std` (0.1: every token about equally likely).
template <class T = float>
LlamaLM<T> toy_lm(std::uint64_t seed, double std = 0.1) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 8;
  c.d_model = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.d_ff = 32;
  c.max_seq = 16;
  c.tied_head = false;
  LlamaLM<T> lm(c);
  Rng rng(seed);
  lm.init_random(rng, std);
  return lm;
}

// Reward: how many times the good token occurs in the response.
struct CountToken {
  std::vector<double> operator()(std::span<const rl::Sample> batch) const {
    std::vector<double> s;
    for (const auto& x : batch)
      s.push_back(static_cast<double>(std::count(x.response.begin(), x.response.end(), kGood)));
    return s;
  }
};

}  // namespace p4lm::rl_test
