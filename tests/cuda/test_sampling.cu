// The device sampler (backend/cuda/sampling.cuh) against the CPU's sample_token (model/generate.hpp):
// given the same logits and the same Rng streams, both pick the same tokens for every (temperature,
// top_k, top_p) setting, greedy included, with log-probabilities equal to float rounding. Skipped where
// there is no GPU. Also: the CUDA ops reject wrong shapes with the CPU ops' messages (the shared checks
// of ops/shape_checks.hpp); that part needs no GPU, since the checks run before any device work.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>
#include <p4lm/cuda.hpp>
#include <p4lm/model/generate.hpp>
#include <p4lm/ops/ops.hpp>

#include "skip.hpp"

// Everything in a named namespace: a global `using namespace p4lm` would make `cuda::` ambiguous
// (p4lm::cuda and libcu++'s ::cuda) in the host stub nvcc generates for this file.
namespace p4lm_sampling_test {
using namespace p4lm;

namespace {

// (B, V) logits: normal * 3, with runs of equal values in some rows so that ties are exercised.
std::vector<float> samp_logits(std::size_t B, std::size_t V, std::uint64_t seed) {
  Rng rng(seed, 99);
  std::vector<float> x(B * V);
  for (auto& v : x) v = static_cast<float>(3.0 * rng.normal());
  for (std::size_t b = 0; b < B; b += 2)  // every other row: its 8 largest-index entries tie with entry 0
    for (std::size_t j = V - 8; j < V; ++j) x[b * V + j] = x[b * V];
  return x;
}

struct SampSetting {
  double temperature;
  std::size_t top_k;
  double top_p;
};

}  // namespace

TEST_CASE("TokenSampler picks the CPU sampler's tokens from the same logits and Rng streams",
          "[cuda][sampling]") {
  if (p4lm::cuda::device_count() == 0) P4LM_SKIP("no CUDA device");
  constexpr std::size_t B = 6, V = 3001, draws = 5;
  constexpr std::uint64_t seed = 1234;
  const std::vector<SampSetting> settings{{0.0, 0, 1.0},  {1.0, 0, 1.0},      {0.7, 0, 1.0},  {1.0, 40, 1.0},
                                          {0.7, 40, 1.0}, {1.0, 0, 0.9},      {0.8, 0, 0.95}, {1.3, 20, 0.8},
                                          {0.5, 5, 0.5},  {1.0, V + 3, 0.99}, {2.0, 1, 1.0}};
  const auto host = samp_logits(B, V, 7);
  CudaTensor<float> logits(Shape{B, V});
  copy(logits.view(), TensorView<backend::cpu, float>(const_cast<float*>(host.data()), Shape{B, V}));
  p4lm::cuda::TokenSampler sampler;
  std::size_t compared = 0, distinct_cut = 0;
  for (const auto& s : settings) {
    INFO("temperature " << s.temperature << ", top_k " << s.top_k << ", top_p " << s.top_p);
    const SamplingOptions o{.temperature = s.temperature, .top_k = s.top_k, .top_p = s.top_p};
    std::vector<Rng> cpu_rngs, gpu_rngs;
    for (std::size_t b = 0; b < B; ++b) {
      cpu_rngs.emplace_back(seed, b);
      gpu_rngs.emplace_back(seed, b);
    }
    std::vector<std::pair<double, std::int32_t>> scratch;
    std::vector<std::uint8_t> active(B, 1);
    active[3] = 0;  // a stopped row: skipped, its outputs untouched
    for (std::size_t d = 0; d < draws; ++d) {
      std::vector<double> uniforms(B, 0.0);
      for (std::size_t b = 0; b < B; ++b)
        if (active[b] && s.temperature > 0) uniforms[b] = gpu_rngs[b].uniform_double();
      std::vector<std::int32_t> picks(B, -7);
      std::vector<float> logprobs(B, 5.0f);
      sampler.sample(logits, {s.temperature, s.top_k, s.top_p}, uniforms, active, picks, logprobs);
      for (std::size_t b = 0; b < B; ++b) {
        INFO("row " << b << ", draw " << d);
        if (!active[b]) {
          CHECK(picks[b] == -7);
          CHECK(logprobs[b] == 5.0f);
          continue;
        }
        float cpu_logprob = 0;
        const std::int32_t cpu_pick =
            sample_token(host.data() + b * V, V, o, cpu_rngs[b], cpu_logprob, scratch);
        CHECK(picks[b] == cpu_pick);
        CHECK(logprobs[b] == Approx(cpu_logprob).margin(2e-5));
        ++compared;
        if (s.top_k > 0 && s.top_k < V && cpu_pick != 0) ++distinct_cut;
      }
    }
  }
  CHECK(compared == settings.size() * draws * (B - 1));
  CHECK(distinct_cut > 0);  // the cut settings did draw tokens other than the tied maximum
}

TEST_CASE("TokenSampler: greedy picks the first maximum, and a bad shape is an error", "[cuda][sampling]") {
  if (p4lm::cuda::device_count() == 0) P4LM_SKIP("no CUDA device");
  std::vector<float> host{0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  CudaTensor<float> logits(Shape{2, 4});
  copy(logits.view(), TensorView<backend::cpu, float>(host.data(), Shape{2, 4}));
  p4lm::cuda::TokenSampler sampler;
  std::vector<double> uniforms(2, 0.0);
  std::vector<std::uint8_t> active(2, 1);
  std::vector<std::int32_t> picks(2, -1);
  std::vector<float> logprobs(2, 0.0f);
  sampler.sample(logits, {0.0, 0, 1.0}, uniforms, active, picks, logprobs);
  CHECK(picks[0] == 1);
  CHECK(picks[1] == 0);
  CHECK(logprobs[1] == Approx(std::log(0.25f)).margin(1e-6));
  CHECK_THROWS_AS(
      sampler.sample(logits.view().reshaped(Shape{8}), {0.0, 0, 1.0}, uniforms, active, picks, logprobs),
      ShapeError);
}

namespace {

// The message of the error f throws ("" if none).
template <class F>
std::string xsc_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A device view with a shape and no memory: the shape checks run before any device work, so the
// CUDA ops can be called with these where there is no GPU.
ops::CudaView xsc_dev(Shape s) {
  return ops::CudaView(nullptr, s);
}
ops::CudaIds xsc_dev_ids(Shape s) {
  return ops::CudaIds(nullptr, s);
}

}  // namespace

TEST_CASE("CUDA ops reject wrong shapes with the CPU ops' messages (shared checks)", "[cuda][shape]") {
  CpuTensor<float> inp(Shape{2, 3, 4}), w_bad(Shape{5, 3}), out(Shape{2, 3, 5});
  const std::string cpu_mm = xsc_message([&] { ops::matmul_forward<float>(out, inp, w_bad); });
  const std::string dev_mm = xsc_message([&] {
    ops::matmul_forward(xsc_dev({2, 3, 5}), xsc_dev({2, 3, 4}), xsc_dev({5, 3}));
  });
  CHECK(cpu_mm.find("matmul_forward: weight") != std::string::npos);
  CHECK(dev_mm == cpu_mm);

  CpuTensor<float> q(Shape{2, 3, 2, 4});
  CpuTensor<std::int32_t> pos_bad(Shape{2, 4});
  const std::string cpu_rope = xsc_message([&] { ops::rope_forward<float>(q, q, pos_bad); });
  const std::string dev_rope = xsc_message([&] {
    ops::rope_forward(xsc_dev({2, 3, 2, 4}), xsc_dev({2, 3, 2, 4}), xsc_dev_ids({2, 4}));
  });
  CHECK(cpu_rope.find("rope_forward: positions") != std::string::npos);
  CHECK(dev_rope == cpu_rope);

  CpuTensor<float> aq(Shape{2, 3, 4, 8}), kv(Shape{2, 5, 2, 8}), v_bad(Shape{2, 4, 2, 8}),
      probs(Shape{2, 4, 3, 5});
  const std::string cpu_attn = xsc_message([&] { ops::attention_forward<float>(aq, probs, aq, kv, v_bad); });
  const std::string dev_attn = xsc_message([&] {
    ops::attention_forward(xsc_dev({2, 3, 4, 8}), xsc_dev({2, 4, 3, 5}), xsc_dev({2, 3, 4, 8}),
                           xsc_dev({2, 5, 2, 8}), xsc_dev({2, 4, 2, 8}));
  });
  CHECK(cpu_attn.find("attention_forward: v") != std::string::npos);
  CHECK(dev_attn == cpu_attn);

  CpuTensor<float> x(Shape{2, 3, 4}), c4(Shape{4}), mean_bad(Shape{5}), rstd(Shape{6});
  const std::string cpu_ln =
      xsc_message([&] { ops::layernorm_forward<float>(x, mean_bad, rstd, x, c4, c4); });
  const std::string dev_ln = xsc_message([&] {
    ops::layernorm_forward(xsc_dev({2, 3, 4}), xsc_dev({5}), xsc_dev({6}), xsc_dev({2, 3, 4}), xsc_dev({4}),
                           xsc_dev({4}));
  });
  CHECK(cpu_ln.find("layernorm_forward: mean") != std::string::npos);
  CHECK(dev_ln == cpu_ln);

  CpuTensor<std::int32_t> ids(Shape{2, 3});
  CpuTensor<float> wte(Shape{10, 4}), wpe_bad(Shape{2, 4}), emb(Shape{2, 3, 4});
  const std::string cpu_emb = xsc_message([&] { ops::embedding_forward<float>(emb, ids, wte, wpe_bad); });
  const std::string dev_emb = xsc_message([&] {
    ops::embedding_forward(xsc_dev({2, 3, 4}), xsc_dev_ids({2, 3}), xsc_dev({10, 4}), xsc_dev({2, 4}));
  });
  CHECK(cpu_emb.find("embedding_forward: wpe") != std::string::npos);
  CHECK(dev_emb == cpu_emb);

  CpuTensor<float> c(Shape{2, 3, 4}), a(Shape{2, 3, 5}), b_bad(Shape{2, 4, 4});
  const std::string cpu_bmm = xsc_message([&] { ops::batched_matmul<float>(c, a, b_bad); });
  const std::string dev_bmm = xsc_message([&] {
    ops::batched_matmul(xsc_dev({2, 3, 4}), xsc_dev({2, 3, 5}), xsc_dev({2, 4, 4}));
  });
  CHECK(cpu_bmm.find("batched_matmul: b") != std::string::npos);
  CHECK(dev_bmm == cpu_bmm);
}

}  // namespace p4lm_sampling_test
