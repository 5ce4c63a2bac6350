// sample_token's draw order (model/generate.hpp), the contract the CUDA sampler reproduces: after a
// top-k or top-p cut the kept tokens are walked from the most likely down (equal logits: lower id
// first), without a cut in id order; one uniform from the row's Rng per sampled token.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

#include <p4lm/core/rng.hpp>
#include <p4lm/model/generate.hpp>

using namespace p4lm;

namespace {

// The documented draw, written plainly: the token for uniform u.
std::int32_t gen_reference_pick(const std::vector<float>& x, const SamplingOptions& o, double u) {
  const std::size_t V = x.size();
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> s(V);
  const double inv_t = 1.0 / o.temperature;  // as sample_token scales
  for (std::size_t j = 0; j < V; ++j) s[j] = (double(x[j]) - mx) * inv_t;
  std::vector<std::int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  const bool cut = (o.top_k > 0 && o.top_k < V) || o.top_p < 1.0;
  std::size_t n = V;
  if (cut) {
    std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return s[a] > s[b]; });
    if (o.top_k > 0 && o.top_k < V) n = o.top_k;
    if (o.top_p < 1.0) {
      double total = 0, cum = 0;
      for (std::size_t i = 0; i < n; ++i) total += std::exp(s[order[i]]);
      std::size_t keep = 0;
      while (keep < n) {
        cum += std::exp(s[order[keep]]) / total;
        ++keep;
        if (cum >= o.top_p) break;
      }
      n = std::max<std::size_t>(keep, 1);
    }
  }
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) total += std::exp(s[order[i]]);
  double acc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc += std::exp(s[order[i]]);
    if (u * total < acc) return order[i];
  }
  return order[n - 1];
}

// The vocabulary size, opaque to the optimiser: with a constant, g++ 12 -O3 warns (a false
// -Waggressive-loop-optimizations) about the remainder loop of sample_token's log-sum-exp.
[[gnu::noipa]] std::size_t gen_vocab_size() {
  return 200;
}

}  // namespace

TEST_CASE("sample_token walks kept tokens most likely first after a cut, in id order without one",
          "[model][generate][sampling]") {
  const std::size_t V = gen_vocab_size();
  Rng init(3);
  std::vector<float> x(V);
  for (auto& v : x) v = static_cast<float>(2 * init.normal());
  for (std::size_t j = V - 4; j < V; ++j) x[j] = x[7];  // ties with entry 7
  struct Setting {
    double temperature;
    std::size_t top_k;
    double top_p;
  };
  std::vector<std::pair<double, std::int32_t>> scratch;
  for (const Setting st : {Setting{1.0, 0, 1.0}, Setting{0.7, 10, 1.0}, Setting{1.0, 0, 0.8},
                           Setting{1.2, 30, 0.9}, Setting{0.5, 1, 1.0}}) {
    INFO("temperature " << st.temperature << ", top_k " << st.top_k << ", top_p " << st.top_p);
    const SamplingOptions o{.temperature = st.temperature, .top_k = st.top_k, .top_p = st.top_p};
    Rng rng(9, 2), twin(9, 2);
    std::size_t distinct = 0;
    std::int32_t first = -1;
    for (int d = 0; d < 300; ++d) {
      float logprob = 0;
      const std::int32_t pick = sample_token(x.data(), V, o, rng, logprob, scratch);
      CHECK(pick == gen_reference_pick(x, o, twin.uniform_double()));  // one uniform per token
      if (first < 0) first = pick;
      distinct += pick != first;
    }
    if (st.top_k != 1) CHECK(distinct > 0);
  }
}
