// train/checkpointing.hpp with a partly frozen model: the optimizer's moments exist, and are written,
// for the trainable parameters only; a checkpoint resumes bit-identically, also when it ends a phase
// that trains other parameters than the next; a checkpoint of the previous layout (moments for every
// parameter) still loads, and one missing a trainable parameter's moments is refused by name.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/train/checkpointing.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using CkptLM = p4lm::LlamaLM<float>;

p4lm::ModelConfig ckpt_config() {
  p4lm::ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 13;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.d_ff = 16;
  c.max_seq = 16;
  return c;
}

// The same random model every call; the lower block and the embeddings frozen (a "top layers" run).
CkptLM ckpt_model(bool freeze_base = true) {
  CkptLM m(ckpt_config());
  p4lm::Rng rng(21);
  m.init_random(rng, 0.2);
  if (freeze_base) {
    m.freeze("layers.0.*");
    m.freeze("tok_embeddings.*");
  }
  return m;
}

std::vector<std::int32_t> ckpt_tokens(std::size_t n) {
  std::vector<std::int32_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::int32_t>((i * 7 + i / 5) % 13);
  return t;
}

void ckpt_step(CkptLM& m, p4lm::AdamW<float>& opt, p4lm::train::NextTokenObjective<CkptLM>& obj,
               std::size_t step) {
  m.zero_grad();
  obj.loss(m, obj.batch(step, 0));
  opt.step(m.parameters(), 5e-3);
}

bool ckpt_same_values(CkptLM& a, CkptLM& b) {
  return std::memcmp(a.all_values().data(), b.all_values().data(), a.all_values().numel() * sizeof(float)) ==
         0;
}

// NextTokenObjective whose phase 0 trains the upper block only and phase 1 everything (SFT's stage 1
// -> stage 2 on a model that lists its frozen parameters too).
struct UnfreezingObjective : p4lm::train::NextTokenObjective<CkptLM> {
  using NextTokenObjective::NextTokenObjective;
  void begin_phase(CkptLM& m, std::size_t p) {
    m.unfreeze("*");
    if (p == 0) {
      m.freeze("layers.0.*");
      m.freeze("tok_embeddings.*");
    }
  }
};

}  // namespace

TEST_CASE("checkpointing: a partly frozen model's checkpoint holds moments for the trainable parameters only",
          "[train][checkpointing]") {
  const fs::path dir = fs::temp_directory_path() / "p4lm_test_checkpointing";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto tokens = ckpt_tokens(200);
  p4lm::train::NextTokenObjective<CkptLM> obj(tokens, 2, 8);

  auto m = ckpt_model();
  p4lm::AdamW<float> opt(m.parameters(), {.lr = 5e-3, .weight_decay = 0.05});
  std::size_t trainable = 0, all = 0;
  for (std::size_t i = 0; i < m.parameters().size(); ++i) {
    const auto& p = m.parameters()[i];
    all += p.value.numel();
    if (p.trainable) trainable += p.value.numel();
    CHECK(opt.has_state(i) == p.trainable);
  }
  REQUIRE(trainable < all);
  CHECK(opt.state_numel() == trainable);  // held in memory

  for (std::size_t s = 0; s < 2; ++s) ckpt_step(m, opt, obj, s);
  const fs::path path = dir / "checkpoint.safetensors";
  p4lm::train::save_training_checkpoint(path, m, &opt, nlohmann::json{{"step", 2}});
  {
    const auto st = p4lm::io::SafetensorsFile::open(path);
    std::size_t written = 0;
    for (const auto& p : m.parameters()) {
      INFO(p.name);
      CHECK(st.contains("optimizer.m/" + p.name) == p.trainable);
      CHECK(st.contains("optimizer.v/" + p.name) == p.trainable);
      if (st.contains("optimizer.m/" + p.name)) written += st.at("optimizer.m/" + p.name).numel();
    }
    CHECK(written == trainable);  // written to the file
  }

  // The continuation: one more step on the original and on a model + optimizer loaded from the file.
  auto resumed = ckpt_model();
  p4lm::Rng other(99);
  resumed.init_random(other, 0.2);  // other values: the file must set them all
  p4lm::AdamW<float> opt_resumed(resumed.parameters(), {.lr = 5e-3, .weight_decay = 0.05});
  p4lm::train::load_training_checkpoint(path, resumed, &opt_resumed);
  CHECK(opt_resumed.steps() == 2);
  CHECK(ckpt_same_values(m, resumed));

  SECTION("a checkpoint of the previous layout (moments for every parameter) resumes the same way") {
    const fs::path old_path = dir / "old_layout.safetensors";
    const auto st = p4lm::io::SafetensorsFile::open(path);
    std::vector<p4lm::io::SafetensorsEntry> entries;
    for (const auto& name : st.names()) {
      const auto& t = st.at(name);
      entries.push_back({t.name, t.dtype, t.shape, t.data});
    }
    std::vector<std::vector<float>> junk;  // the frozen parameters' moments, never to be read
    for (const auto& p : m.parameters()) {
      if (p.trainable) continue;
      junk.emplace_back(p.value.numel(), 7.0f);
      const std::vector<std::int64_t> shape(p.value.shape().begin(), p.value.shape().end());
      for (const char* moment : {"optimizer.m/", "optimizer.v/"})
        entries.push_back(p4lm::io::tensor_f32(moment + p.name, shape, junk.back()));
    }
    p4lm::io::save_safetensors(old_path, entries, st.metadata());
    auto old = ckpt_model();
    p4lm::AdamW<float> opt_old(old.parameters(), {.lr = 5e-3, .weight_decay = 0.05});
    p4lm::train::load_training_checkpoint(old_path, old, &opt_old);
    ckpt_step(m, opt, obj, 2);
    ckpt_step(old, opt_old, obj, 2);
    CHECK(ckpt_same_values(m, old));
  }
  SECTION("resumed, the next step is bit-identical to the uninterrupted one") {
    ckpt_step(m, opt, obj, 2);
    ckpt_step(resumed, opt_resumed, obj, 2);
    CHECK(ckpt_same_values(m, resumed));
  }
  SECTION("an optimizer with moments the file lacks is refused, naming the file and the tensor") {
    auto thawed = ckpt_model(false);  // tok_embeddings trainable now: its moments are not in the file
    p4lm::AdamW<float> opt_thawed(thawed.parameters());
    CHECK_THROWS_WITH(p4lm::train::load_training_checkpoint(path, thawed, &opt_thawed),
                      Catch::Contains(path.string()) && Catch::Contains("optimizer.m/tok_embeddings.weight"));
  }
  fs::remove_all(dir);
}

TEST_CASE("checkpointing: a Trainer run that unfreezes at a phase resumes bit-identically from any step",
          "[train][checkpointing]") {
  const fs::path root = fs::temp_directory_path() / "p4lm_test_checkpointing_phases";
  fs::remove_all(root);
  const auto tokens = ckpt_tokens(300);
  auto options = [](const fs::path& out, std::size_t stop_after) {
    p4lm::train::TrainerOptions o;
    for (double lr : {1e-2, 5e-3})
      o.phases.push_back({.steps = 3,
                          .schedule = {.peak_lr = lr, .warmup_steps = 1, .total_steps = 3, .min_lr = lr / 10},
                          .optimizer = {.lr = lr, .weight_decay = 0.1, .max_grad_norm = 0.5}});
    o.out = out;
    o.checkpoint_every = 0;
    o.final_checkpoint = true;
    o.stop_after = stop_after;
    o.progress = false;
    return o;
  };
  auto run = [&](const fs::path& out, std::size_t stop_after, bool resume) {
    auto m = ckpt_model(false);
    UnfreezingObjective obj(tokens, 2, 8);
    p4lm::train::Trainer trainer(m, obj, options(out, stop_after));
    if (resume) REQUIRE(trainer.resume());
    trainer.fit();
    std::vector<float> values(m.all_values().data(), m.all_values().data() + m.all_values().numel());
    return values;
  };
  const auto straight = run(root / "straight", 0, false);
  for (std::size_t kill : {2, 3, 4}) {  // inside phase 0, at its end, inside phase 1
    const fs::path dir = root / ("killed" + std::to_string(kill));
    run(dir, kill, false);
    {
      const auto st = p4lm::io::SafetensorsFile::open(dir / "checkpoint.safetensors");
      INFO("checkpoint after step " << kill);
      // Phase 0 trains the upper block alone: its checkpoints hold no moments for the frozen rest.
      CHECK(st.contains("optimizer.m/layers.0.attention.wq.weight") == (kill > 3));
      CHECK(st.contains("optimizer.m/layers.1.attention.wq.weight"));
    }
    const auto resumed = run(dir, 0, true);
    INFO("killed after step " << kill);
    REQUIRE(resumed.size() == straight.size());
    CHECK(std::memcmp(resumed.data(), straight.data(), resumed.size() * sizeof(float)) == 0);
  }
  fs::remove_all(root);
}
