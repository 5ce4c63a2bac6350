// The shared Trainer on N ranks (train/trainer.hpp with dist/): N ranks of per-rank batch b end k
// steps with the parameters of one process of batch N·b, report its losses, leave the files to rank
// 0, and resume on any number of ranks when the global batch is the same.
//
// Tolerance: the ranks' gradients are summed by MPI in another order than one process sums them, so
// float32 parameters agree to rounding, not bit for bit: 6 AdamW steps at lr 1e-2 on the tiny model
// differ by at most 1.2e-7 (one micro-batch) and 6.1e-7 (two) between 2 ranks and one process here;
// the tolerance is 2e-5, and a rank training on its own batch alone lands 0.04 away.

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "dist_support.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/dist/communicator.hpp"

namespace {

using namespace p4lm_dist_test;
constexpr double dp_tolerance = 2e-5;

std::size_t lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

}  // namespace

TEST_CASE("data parallel: N ranks of batch b = one process of batch N*b after k steps", "[dist][trainer]") {
  const auto world = p4lm::dist::world();
  const std::size_t n = static_cast<std::size_t>(world.size());
  for (std::size_t micro : {1u, 2u}) {
    INFO("ranks " << n << ", micro-batches " << micro);
    // Each rank initialises differently: the Trainer starts from rank 0's parameters.
    const auto dp = train_tiny_lm({.batch = 2,
                                   .micro = micro,
                                   .comm = world,
                                   .init_seed = 5 + 1000 * static_cast<std::uint64_t>(world.rank())});
    const auto one = train_tiny_lm({.batch = 2 * n, .micro = micro});
    const auto start = train_tiny_lm({.steps = 0});
    const double diff = max_abs_diff(dp.params, one.params);
    INFO("max |parameter difference| " << diff);
    CHECK(diff <= dp_tolerance);
    REQUIRE(dp.losses.size() == 6);
    REQUIRE(one.losses.size() == 6);
    for (std::size_t s = 0; s < 6; ++s) CHECK(dp.losses[s] == Approx(one.losses[s]).epsilon(1e-5));
    CHECK(max_abs_diff(dp.params, start.params) > 1e-3);  // it trained
    if (n > 1) {  // the ranks read different data: one rank's batch alone gives another model
      const auto alone = train_tiny_lm({.batch = 2, .micro = micro});
      CHECK(max_abs_diff(dp.params, alone.params) > 50 * dp_tolerance);
    }
  }
}

TEST_CASE("data parallel: rank 0 alone writes metrics and checkpoints", "[dist][trainer]") {
  const auto world = p4lm::dist::world();
  SharedTempDir dir(world, "files");
  const auto dp = train_tiny_lm({.out = dir.path, .comm = world});
  world.barrier();
  CHECK(dp.step == 6);
  CHECK(fs::exists(dir.path / "checkpoint.safetensors"));
  CHECK(lines_of(dir.path / "metrics.jsonl") == 6);  // one record per step, not one per rank
  // Every rank ends with rank 0's checkpointed parameters.
  auto saved = p4lm::load_checkpoint<p4lm::LlamaLM<float>>(dir.path / "checkpoint.safetensors");
  std::vector<float> values;
  for (const auto& p : saved.parameters())
    for (const float v : p.value.span()) values.push_back(v);
  CHECK(max_abs_diff(values, dp.params) == 0);
}

TEST_CASE("data parallel: a run resumes on another number of ranks with the same global batch",
          "[dist][trainer]") {
  const auto world = p4lm::dist::world();
  const std::size_t n = static_cast<std::size_t>(world.size());
  const p4lm::dist::Communicator alone;
  const auto reference = train_tiny_lm({.batch = 2 * n});
  SECTION("N ranks, then one process") {
    SharedTempDir dir(world, "to_one");
    const auto first = train_tiny_lm({.stop_after = 3, .out = dir.path, .comm = world});
    CHECK(first.step == 3);
    world.barrier();
    if (world.is_root()) {
      const auto rest = train_tiny_lm({.batch = 2 * n, .out = dir.path, .resume = true, .comm = alone});
      CHECK(rest.resumed);
      CHECK(rest.step == 6);
      CHECK(max_abs_diff(rest.params, reference.params) <= dp_tolerance);
    }
  }
  SECTION("one process, then N ranks") {
    SharedTempDir dir(world, "from_one");
    if (world.is_root())
      CHECK(train_tiny_lm({.batch = 2 * n, .stop_after = 3, .out = dir.path, .comm = alone}).step == 3);
    world.barrier();
    const auto rest = train_tiny_lm({.out = dir.path,
                                     .resume = true,
                                     .comm = world,
                                     .init_seed = 77 + static_cast<std::uint64_t>(world.rank())});
    CHECK(rest.resumed);
    CHECK(rest.step == 6);
    CHECK(max_abs_diff(rest.params, reference.params) <= dp_tolerance);
  }
  SECTION("another global batch is refused on every rank") {
    SharedTempDir dir(world, "refuse");
    train_tiny_lm({.stop_after = 3, .out = dir.path, .comm = world});
    world.barrier();
    CHECK_THROWS_WITH(train_tiny_lm({.batch = 3, .out = dir.path, .resume = true, .comm = world}),
                      Catch::Contains("batch (checkpoint " + std::to_string(2 * n) + ", this run " +
                                      std::to_string(3 * n) + ")"));
  }
}

namespace {

// Two weights; batch k's loss is 0.5 |w - k|², NaN for the batch numbered `nan_at` (read by one rank).
struct GuardToy {
  using value_type = float;
  p4lm::CpuTensor<float> value{p4lm::Shape{2}}, grad{p4lm::Shape{2}};
  std::vector<p4lm::Parameter<float>> params{{"w", value.view(), grad.view()}};
  std::span<p4lm::Parameter<float>> parameters() { return params; }
  void zero_grad() { grad.zero(); }
};
struct GuardToyObjective {
  std::size_t nan_at;
  std::size_t batch(std::size_t step, std::size_t) const { return step; }
  p4lm::train::StepLoss loss(GuardToy& m, std::size_t k) {
    double l = 0;
    for (std::size_t i = 0; i < 2; ++i) {
      const float d = m.value.data()[i] - static_cast<float>(k);
      m.grad.data()[i] += d, l += 0.5 * d * d;
    }
    return {k == nan_at ? std::nan("") : l, 1};
  }
};

}  // namespace

TEST_CASE("data parallel: a NaN on one rank stops every rank at the same step", "[dist][trainer]") {
  const auto world = p4lm::dist::world();
  GuardToy model;
  GuardToyObjective objective{.nan_at = 2 * static_cast<std::size_t>(world.size()) - 1};  // step 2, last rank
  p4lm::train::TrainerOptions o{
      .phases = {{.steps = 5, .optimizer = {.lr = 0.1}}}, .out = {}, .progress = false, .comm = world};
  p4lm::train::Trainer trainer(model, objective, o);
  try {
    trainer.fit();
    FAIL("the NaN loss went unnoticed");
  } catch (const p4lm::train::NonFiniteError& e) {
    CHECK(e.step() == 2);
    CHECK(trainer.step() == 1);
  }
  CHECK(world.max(1) == 1);  // the ranks still meet in a collective afterwards: none is stuck
}

namespace {

// Shards its data itself: records the (global step, shard) the Trainer hands it.
struct SelfShardingObjective {
  std::vector<std::size_t> steps, ranks, sizes;
  std::size_t batch(std::size_t step, std::size_t) const { return step; }
  std::size_t batch(std::size_t step, std::size_t, const p4lm::dist::Shard& shard) {
    steps.push_back(step), ranks.push_back(shard.rank), sizes.push_back(shard.ranks);
    return step * shard.ranks + shard.rank;
  }
  p4lm::train::StepLoss loss(GuardToy& m, std::size_t k) {
    for (std::size_t i = 0; i < 2; ++i) m.grad.data()[i] += m.value.data()[i] - static_cast<float>(k);
    return {1.0, 1};
  }
};

}  // namespace

TEST_CASE("data parallel: an objective with batch(step, micro, shard) gets the global step and its shard",
          "[dist][trainer]") {
  const auto world = p4lm::dist::world();
  GuardToy model;
  SelfShardingObjective objective;
  p4lm::train::TrainerOptions o{
      .phases = {{.steps = 3, .optimizer = {.lr = 0.1}}}, .out = {}, .progress = false, .comm = world};
  p4lm::train::Trainer trainer(model, objective, o);
  const auto fit = trainer.fit();
  if (world.distributed()) {  // the Trainer times its steps and the reductions in them
    CHECK(fit.reduce_seconds > 0);
    CHECK(fit.reduce_seconds <= fit.step_seconds);
  } else {
    CHECK(fit.step_seconds == 0);
  }
  const auto rank = static_cast<std::size_t>(world.rank()), size = static_cast<std::size_t>(world.size());
  CHECK(objective.steps == std::vector<std::size_t>{0, 1, 2});
  CHECK(objective.ranks == std::vector<std::size_t>(3, rank));
  CHECK(objective.sizes == std::vector<std::size_t>(3, size));
}
