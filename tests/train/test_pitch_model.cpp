// PitchModel's stages on a tiny Llama: stage 2 with train_top_layers lists (and so optimizes and
// checkpoints) only the adapters, the top blocks and the final norm; an SFT run with it leaves the
// lower blocks and the embeddings bit-identical, writes a checkpoint without them or their moments,
// saves a complete model file, and resumes bit-identically.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "p4lm/core/rng.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/train/pitch_model.hpp"
#include "p4lm/train/sft.hpp"

namespace {

constexpr int kTopDim = 4;
using TopLM = p4lm::LlamaLM<float>;
using TopAdapter = p4lm::CFAdapter<kTopDim, 1, float>;

p4lm::ModelConfig top_layers_config() {
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = 16, c.d_model = 8, c.n_layers = 4, c.n_heads = 2, c.n_kv_heads = 1;
  c.d_ff = 16, c.max_seq = 24, c.tied_head = true;
  return c;
}

struct TopLayersData {
  p4lm::cf::Embeddings<kTopDim> cf{6, 3};
  std::vector<p4lm::train::SftSequence> train, held_out;
};

TopLayersData top_layers_data() {
  TopLayersData d;
  p4lm::Rng rng(11);
  for (auto& v : d.cf.users) v = static_cast<float>(rng.normal());
  for (auto& v : d.cf.items) v = static_cast<float>(rng.normal());
  for (int u = 0; u < 6; ++u)
    for (int i = 0; i < 3; ++i) {
      p4lm::train::SftSequence q;
      q.user = u, q.item = i, q.user_id = u, q.movie_id = i;
      q.ids = {1, 10 + i, 3, 5 + u % 3, 10 + i, 4, 2};
      q.prompt_len = 3;
      (u == 5 ? d.held_out : d.train).push_back(q);
    }
  return d;
}

// Values of the parameters whose names satisfy `pick`, concatenated in list order.
template <class Pick>
std::vector<float> top_layers_values(TopLM& lm, Pick pick) {
  std::vector<float> out;
  for (const auto& p : lm.parameters())
    if (pick(p.name)) out.insert(out.end(), p.value.data(), p.value.data() + p.value.numel());
  return out;
}

bool top_layers_frozen_name(const std::string& n) {  // with 4 blocks and 2 trained
  return n.starts_with("tok_embeddings") || n.starts_with("layers.0.") || n.starts_with("layers.1.");
}

}  // namespace

TEST_CASE("pitch model: stage 2 with top layers lists the adapters, the top blocks and the final norm",
          "[train][sft]") {
  TopLM lm(top_layers_config());
  TopAdapter adapter(lm.config().d_model);
  p4lm::train::PitchModel<TopLM, TopAdapter> model(lm, &adapter);
  const std::size_t all = lm.parameters().size() + adapter.parameters().size();
  CHECK(model.parameters().size() == all);
  model.set_stage(2, 2);
  std::vector<std::string> names;
  for (const auto& p : model.parameters()) {
    names.push_back(p.name);
    CHECK(p.trainable);
    const bool expected = p.name.starts_with("adapter.") || p.name.starts_with("layers.2.") ||
                          p.name.starts_with("layers.3.") || p.name == "norm.weight";
    CHECK(expected);
  }
  CHECK(std::find(names.begin(), names.end(), "norm.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layers.3.attention.wq.weight") != names.end());
  // The modules' own flags follow (their backward skips frozen weight gradients).
  for (const auto& p : lm.parameters()) CHECK(p.trainable == !top_layers_frozen_name(p.name));
  model.set_stage(1);
  for (const auto& p : model.parameters()) CHECK(p.name.starts_with("adapter."));
  CHECK(model.parameters().size() == adapter.parameters().size());
  model.set_stage(2, 0);  // 0: everything
  CHECK(model.parameters().size() == all);
  model.set_stage(2, 4);  // as many as the model has: everything
  CHECK(model.parameters().size() == all);
  CHECK(p4lm::train::PitchModel<TopLM, TopAdapter>::block_of("layers.12.ffn_norm.weight") == 12u);
  CHECK(p4lm::train::PitchModel<TopLM, TopAdapter>::block_of("h.3.ln_1.bias") == 3u);
  CHECK_FALSE(p4lm::train::PitchModel<TopLM, TopAdapter>::block_of("layers.x.w").has_value());
  CHECK_FALSE(p4lm::train::PitchModel<TopLM, TopAdapter>::block_of("norm.weight").has_value());
}

TEST_CASE("sft: train_top_layers freezes the lower blocks, keeps checkpoints small and resumes",
          "[train][sft]") {
  namespace fs = std::filesystem;
  const auto root = fs::temp_directory_path() / ("p4lm_test_top_layers_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto data = top_layers_data();
  p4lm::train::SftOptions o{.batch_size = 3,
                            .stage1_steps = 2,
                            .stage2_steps = 4,
                            .train_top_layers = 2,
                            .warmup_steps = 1,
                            .eval_every = 0,
                            .checkpoint_every = 3,
                            .progress = false};
  struct Run {
    std::vector<float> frozen, trained, adapter;
  };
  auto run = [&](const fs::path& out, std::size_t stop_after, bool resume) {
    TopLM lm(top_layers_config());
    p4lm::Rng rng(5);
    lm.init_random(rng, 0.2);
    TopAdapter adapter(lm.config().d_model);
    adapter.init_random(rng, 0.2);
    auto opts = o;
    opts.stop_after = stop_after;
    p4lm::train::SftTrainer<TopLM, TopAdapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out,
                                                       opts, out);
    if (resume) REQUIRE(trainer.resume());
    trainer.fit();
    if (trainer.done()) trainer.save_model(out / "model.safetensors");
    Run r{top_layers_values(lm, top_layers_frozen_name),
          top_layers_values(lm, [](const std::string& n) { return !top_layers_frozen_name(n); }),
          {}};
    for (const auto& p : adapter.parameters())
      r.adapter.insert(r.adapter.end(), p.value.data(), p.value.data() + p.value.numel());
    return r;
  };
  TopLM base(top_layers_config());
  p4lm::Rng rng(5);
  base.init_random(rng, 0.2);
  const auto frozen_before = top_layers_values(base, top_layers_frozen_name);
  const auto trained_before =
      top_layers_values(base, [](const std::string& n) { return !top_layers_frozen_name(n); });

  const auto straight = run(root / "straight", 0, false);
  REQUIRE(straight.frozen.size() == frozen_before.size());
  CHECK(std::memcmp(straight.frozen.data(), frozen_before.data(), frozen_before.size() * sizeof(float)) == 0);
  CHECK(straight.trained != trained_before);

  // The step-6 checkpoint: the trained tensors and their moments only.
  const auto st = p4lm::io::SafetensorsFile::open(root / "straight" / "checkpoint.safetensors");
  CHECK(st.contains("layers.3.attention.wq.weight"));
  CHECK(st.contains("optimizer.m/layers.2.feed_forward.w1.weight"));
  CHECK(st.contains("norm.weight"));
  CHECK(st.contains("optimizer.v/adapter.user.fc1.weight"));
  for (const auto& name : st.names()) {
    INFO(name);
    CHECK(name.find("layers.0.") == std::string::npos);
    CHECK(name.find("layers.1.") == std::string::npos);
    CHECK(name.find("tok_embeddings") == std::string::npos);
  }
  // The model file is whole: it loads into a fresh pitch model, frozen and trained tensors alike.
  {
    TopLM lm(top_layers_config());
    TopAdapter adapter(lm.config().d_model);
    p4lm::train::PitchModel<TopLM, TopAdapter> bundle(lm, &adapter);
    p4lm::load_checkpoint_into(bundle, root / "straight" / "model.safetensors");
    CHECK(top_layers_values(lm, top_layers_frozen_name) == frozen_before);
    CHECK(top_layers_values(lm, [](const std::string& n) { return !top_layers_frozen_name(n); }) ==
          straight.trained);
  }
  // Stopped in stage 1 (its checkpoint holds the adapters alone) or in stage 2, then resumed from
  // the base model plus the checkpoint: bit-identical to the straight run.
  for (std::size_t kill : {1, 4}) {
    INFO("stopped after step " << kill);
    const auto dir = root / ("killed" + std::to_string(kill));
    run(dir, kill, false);
    const auto resumed = run(dir, 0, true);
    CHECK(resumed.frozen == straight.frozen);
    CHECK(resumed.trained == straight.trained);
    CHECK(resumed.adapter == straight.adapter);
  }
  fs::remove_all(root);
}
