// SFT of a pitch model (train/sft.hpp's SftTrainer, both stages: adapters alone, then everything) on
// N ranks of batch b ends with the parameters of one process of batch N·b, and every rank gets the
// held-out evaluation that rank 0 computed, with a link weight that switches at a global step; a run
// stopped on N ranks resumes as one process of batch N·b and the other way round. Same tolerance as
// test_data_parallel.cpp.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "dist_support.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/train/sft.hpp"

namespace {

using namespace p4lm_dist_test;
constexpr int kSftDim = 4;

struct SftData {
  p4lm::cf::Embeddings<kSftDim> cf{6, 4};
  std::vector<p4lm::train::SftSequence> train, held_out;
};

// User u's pitch repeats a token chosen by the signs of u's embedding (its link sentence), then names
// the item.
SftData sft_data() {
  SftData s;
  p4lm::Rng rng(11);
  for (std::size_t i = 0; i < s.cf.users.size(); ++i) s.cf.users.data()[i] = static_cast<float>(rng.normal());
  for (std::size_t i = 0; i < s.cf.items.size(); ++i) s.cf.items.data()[i] = static_cast<float>(rng.normal());
  for (int u = 0; u < 6; ++u)
    for (int i = 0; i < 4; ++i) {
      p4lm::train::SftSequence q;
      q.user = u, q.item = i, q.user_id = u, q.movie_id = i;
      const float* e = s.cf.users.data() + u * kSftDim;
      const int f = 5 + (e[0] > 0 ? 1 : 0) + (e[1] > 0 ? 2 : 0);
      // Pitches of 5 to 7 tokens: the ranks' batches hold different numbers of tokens.
      const int repeat = 1 + u % 3;
      q.ids = {1, 10 + i, 3};
      q.ids.insert(q.ids.end(), static_cast<std::size_t>(repeat), f);
      q.ids.insert(q.ids.end(), {10 + i, 4, 2});
      q.prompt_len = 3;
      q.link_begin = 3, q.link_end = static_cast<std::uint32_t>(3 + repeat);
      ((u + i) % 5 == 0 ? s.held_out : s.train).push_back(q);
    }
  return s;
}

struct SftRun {
  std::vector<float> params;
  double eval_loss;
};

struct SftRunFiles {
  fs::path out{};
  std::size_t stop_after = 0;
  bool resume = false;
};

SftRun sft_run(std::size_t batch, std::uint64_t init_seed, const SftRunFiles& files = {}) {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<kSftDim, 1, float>;
  p4lm::ModelConfig c = tiny_config();
  c.max_seq = 24;
  LM lm(c);
  p4lm::Rng rng(init_seed);
  lm.init_random(rng, 0.2);
  Adapter adapter(lm.config().d_model);
  adapter.init_random(rng, 0.2);
  const auto data = sft_data();
  p4lm::train::SftOptions o{.batch_size = batch,
                            .stage1_steps = 3,
                            .stage2_steps = 3,
                            .stage1_lr = 1e-2,
                            .stage2_lr = 3e-3,
                            .warmup_steps = 1,
                            .link_weight = 5,
                            .link_weight_steps = 3,  // global steps: the same switch on any number of ranks
                            .link_weight_after = 1,
                            .eval_every = 0,
                            .progress = false,
                            .stop_after = files.stop_after};
  p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out, o,
                                               files.out);
  if (files.resume && !trainer.resume()) FAIL("no checkpoint to resume in " << files.out);
  SftRun r{{}, trainer.fit()};
  for (const auto& p : lm.parameters())
    for (const float v : p.value.span()) r.params.push_back(v);
  for (const auto& p : adapter.parameters())
    for (const float v : p.value.span()) r.params.push_back(v);
  return r;
}

}  // namespace

TEST_CASE("data parallel: SFT on N ranks of batch b = one process of batch N*b", "[dist][sft]") {
  const auto world = p4lm::dist::world();
  const std::size_t n = static_cast<std::size_t>(world.size());
  // Each rank initialises differently: the Trainer starts every rank from rank 0's parameters.
  const auto dp = sft_run(2, 3 + 100 * static_cast<std::uint64_t>(world.rank()));
  SftRun one;
  {
    const p4lm::dist::SingleProcess alone;
    one = sft_run(2 * n, 3);
  }
  const double diff = max_abs_diff(dp.params, one.params);
  INFO("ranks " << n << ": max |parameter difference| " << diff);
  CHECK(diff <= 2e-5);
  REQUIRE(std::isfinite(dp.eval_loss));
  CHECK(dp.eval_loss == Approx(one.eval_loss).epsilon(1e-5));
  CHECK(world.max(dp.eval_loss) == dp.eval_loss);  // every rank holds rank 0's evaluation
}

TEST_CASE("data parallel: SFT resumes on another number of ranks with the same global batch", "[dist][sft]") {
  const auto world = p4lm::dist::world();
  const std::size_t n = static_cast<std::size_t>(world.size());
  const auto seed = 3 + 100 * static_cast<std::uint64_t>(world.rank());
  SharedTempDir dir(world, "sft_resume");
  SftRun whole;
  {
    const p4lm::dist::SingleProcess alone;
    whole = sft_run(2 * n, 3);
  }
  // N ranks of batch 2 stop at step 2 (stage 1); one process of batch 2N resumes to the end.
  (void)sft_run(2, seed, {.out = dir.path / "a", .stop_after = 2});
  if (world.is_root()) {
    const p4lm::dist::SingleProcess alone;
    const auto a = sft_run(2 * n, 3, {.out = dir.path / "a", .resume = true});
    INFO("ranks " << n << " then one process: max |parameter difference| "
                  << max_abs_diff(a.params, whole.params));
    CHECK(max_abs_diff(a.params, whole.params) <= 2e-5);
  }
  // One process of batch 2N stops at step 2; N ranks of batch 2 resume to the end.
  if (world.is_root()) {
    const p4lm::dist::SingleProcess alone;
    (void)sft_run(2 * n, 3, {.out = dir.path / "b", .stop_after = 2});
  }
  world.barrier();
  const auto b = sft_run(2, seed, {.out = dir.path / "b", .resume = true});
  INFO("one process then ranks " << n << ": max |parameter difference| "
                                 << max_abs_diff(b.params, whole.params));
  CHECK(max_abs_diff(b.params, whole.params) <= 2e-5);
}
