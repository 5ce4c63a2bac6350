#pragma once
// Shared by the tests of tests/dist/: a temporary folder every rank of the job sees (rank 0 names and
// removes it), and a tiny language model trained the way `p4lm train-lm` does (train_next_token's
// Trainer, with the communicator chosen by the test), returning its parameters.

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/trainer.hpp"

namespace p4lm_dist_test {

namespace fs = std::filesystem;

// Rank 0's temporary folder, the same path on every rank of `comm`; removed by rank 0 at the end.
struct SharedTempDir {
  p4lm::dist::Communicator comm;
  fs::path path;
  SharedTempDir(p4lm::dist::Communicator c, const std::string& name) : comm(c) {
    std::string p;
    if (comm.is_root()) {
      p = (fs::temp_directory_path() / ("p4lm_test_dist_" + name + "_" + std::to_string(::getpid())))
              .string();
      fs::remove_all(p);
    }
    comm.broadcast(p);
    path = p;
  }
  ~SharedTempDir() {
    comm.barrier();
    if (comm.is_root()) fs::remove_all(path);
  }
};

inline p4lm::ModelConfig tiny_config() {
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = 32, c.d_model = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1;
  c.d_ff = 32, c.max_seq = 16;
  return c;
}

inline const std::vector<std::int32_t>& tiny_stream() {
  static const std::vector<std::int32_t> s = [] {
    std::vector<std::int32_t> v(3000);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<std::int32_t>((i * 7 + i / 11 + i * i % 13) % 32);
    return v;
  }();
  return s;
}

// Records the loss the Trainer reports after every step.
struct LossLog {
  std::vector<double> losses;
  template <class Trainer, class Info>
  bool end_step(Trainer&, const Info& info) {
    losses.push_back(info.loss);
    return false;
  }
};

struct LmRun {
  std::size_t batch = 2;  // per rank
  std::size_t micro = 1;
  std::size_t steps = 6;
  std::size_t stop_after = 0;
  fs::path out{};
  bool resume = false;
  p4lm::dist::Communicator comm{};
  std::uint64_t init_seed = 5;
};

struct LmResult {
  std::vector<float> params;  // every parameter, flattened in order
  std::vector<double> losses;
  std::size_t step = 0;
  bool resumed = false;
};

// train_next_token's Trainer (schedule, AdamW with clipping at 1, fingerprint) on the tiny model.
inline LmResult train_tiny_lm(const LmRun& r) {
  using LM = p4lm::LlamaLM<float>;
  LM lm(tiny_config());
  p4lm::Rng rng(r.init_seed);
  lm.init_random(rng);
  p4lm::train::NextTokenObjective<LM> objective(tiny_stream(), r.batch, 8, r.micro);
  p4lm::train::TrainerOptions t{
      .phases = {{.steps = r.steps,
                  .schedule = {.peak_lr = 1e-2, .warmup_steps = 2, .total_steps = r.steps, .min_lr = 1e-3},
                  .optimizer = {.lr = 1e-2,
                                .beta1 = 0.9,
                                .beta2 = 0.95,
                                .eps = 1e-8,
                                .weight_decay = 0.1,
                                .max_grad_norm = 1.0}}},
      .micro_batches = r.micro,
      .out = r.out,
      .checkpoint_every = 0,
      .final_checkpoint = !r.out.empty(),
      .stop_after = r.stop_after,
      .progress = false,
      .label = "dist-test",
      .fingerprint = {{"batch", r.batch}, {"micro_batches", r.micro}},
      .comm = r.comm};
  LossLog log;
  p4lm::train::Trainer trainer(lm, objective, std::move(t), log);
  LmResult out;
  if (r.resume) out.resumed = trainer.resume();
  trainer.fit();
  out.step = trainer.step();
  out.losses = log.losses;
  for (const auto& p : lm.parameters())
    for (const float v : p.value.span()) out.params.push_back(v);
  return out;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace p4lm_dist_test
