// Kill -9 at a random moment, then the same command: the run folder ends byte for byte as the
// uninterrupted run's (checkpoint, metrics, config), for train-lm and for SFT. Each run is this
// test program re-executed as a child process (the hidden test case below) so it can be killed like
// a real run; the kill moments are random points of the run's progress, printed on failure
// (tests/support/kill_resume.hpp).

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "kill_resume.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/sft.hpp"

namespace {

namespace fs = std::filesystem;

p4lm::ModelConfig tiny(std::size_t vocab, std::size_t max_seq) {
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = vocab, c.d_model = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1;
  c.d_ff = 32, c.max_seq = max_seq;
  return c;
}

// The child's work: what `p4lm train-lm` does through the library (same entry point).
void train_lm_child(const fs::path& out) {
  p4lm::LlamaLM<float> lm(tiny(32, 32));
  p4lm::Rng rng(5);
  lm.init_random(rng);
  std::vector<std::int32_t> stream(2000);
  for (std::size_t i = 0; i < stream.size(); ++i)
    stream[i] = static_cast<std::int32_t>((i * 7 + i / 11) % 32);
  p4lm::train::train_next_token(lm, stream,
                                {.batch = 4,
                                 .seq = 16,
                                 .steps = 400,
                                 .lr = 3e-3,
                                 .warmup = 10,
                                 .save_every = 13,
                                 .out = out,
                                 .progress = false,
                                 .fingerprint = {{"data", "synthetic"}},
                                 .run_files = {{"config.json", "{\"steps\": 400}\n"}}});
}

// The child's work for SFT: both stages with the link weight, evaluations with the shuffled control.
void sft_child(const fs::path& out) {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<4, 1, float>;
  LM lm(tiny(16, 24));
  p4lm::Rng rng(1);
  lm.init_random(rng, 0.2);
  Adapter adapter(lm.config().d_model);
  adapter.init_random(rng, 0.2);
  p4lm::cf::Embeddings<4> cf(8, 4);
  for (auto& v : cf.users) v = static_cast<float>(rng.normal());
  for (auto& v : cf.items) v = static_cast<float>(rng.normal());
  std::vector<p4lm::train::SftSequence> train, held_out;
  for (int u = 0; u < 8; ++u)
    for (int i = 0; i < 4; ++i) {
      p4lm::train::SftSequence q;
      q.user = u, q.item = i, q.user_id = u, q.movie_id = i;
      const int f = 5 + u % 4;
      q.ids = {1, 10 + i, 3, f, f, 10 + i, 4, 2};
      q.prompt_len = 3, q.link_begin = 3, q.link_end = 5;
      ((u + i) % 4 == 0 ? held_out : train).push_back(q);
    }
  p4lm::train::SftOptions o{.batch_size = 4,
                            .stage1_steps = 60,
                            .stage2_steps = 240,
                            .stage2_adapter_lr = 4e-3,
                            .warmup_steps = 5,
                            .link_weight = 3,
                            .link_weight_steps = 100,
                            .eval_every = 25,
                            .log_every = 5,
                            .checkpoint_every = 11,
                            .progress = false};
  p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &cf, train, held_out, o, out,
                                               nlohmann::json{{"data", "synthetic"}},
                                               {{"config.json", "{\"sft\": true}\n"}});
  trainer.resume();
  trainer.fit();
  trainer.save_model(out / "model.safetensors");
}

}  // namespace

TEST_CASE("kill-resume child", "[.]") {  // hidden: run only by kill_and_resume as a child process
  const char* kind = p4lm_test::kill_resume::child_kind();
  const char* out = p4lm_test::kill_resume::child_out();
  if (!kind || !out) return;
  if (std::string(kind) == "train-lm") train_lm_child(out);
  if (std::string(kind) == "sft") sft_child(out);
}

TEST_CASE("train-lm: kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[train][trainer][kill]") {
  p4lm_test::kill_resume::kill_and_resume({.kind = "train-lm", .progress_files = {"metrics.jsonl"}});
}

TEST_CASE("sft: kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[train][sft][kill]") {
  p4lm_test::kill_resume::kill_and_resume({.kind = "sft", .progress_files = {"train_metrics.jsonl"}});
}
