// conan create's test of the p4lm package: from the public headers, one training step of a
// tiny random Llama conditioned on CF embeddings through a CFAdapter (the adapter's soft tokens are
// the LM's prefix), taken by the shared Trainer with AdamW on both as one PitchModel, then a few
// greedy tokens from the Generator under the same CF prefix (tests/consumer/program/main.cpp does the
// same at more length). Fails unless the loss is finite before and after the step and the step lowers
// it on the batch it was taken on, and the generation has as many in-vocabulary ids as asked.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <p4lm/p4lm.hpp>

namespace {

constexpr int cf_dim = 8;
using LM = p4lm::LlamaLM<>;
using Adapter = p4lm::CFAdapter<cf_dim>;
using Model = p4lm::train::PitchModel<LM, Adapter>;

// One fixed batch: random user/item embeddings and token ids; each text position predicts the next
// token, the prefix positions and the last text position predict nothing.
struct Batch {
  p4lm::CpuTensor<float> user, item;
  p4lm::CpuTensor<std::int32_t> ids, targets;
};

struct FixedBatch {
  Batch data;
  p4lm::CpuTensor<float> prefix;

  const Batch& batch(std::size_t /*step*/, std::size_t /*micro*/) const { return data; }
  p4lm::train::StepLoss loss(Model& model, const Batch& b) {
    model.adapter()->forward(prefix, b.user, b.item);
    const float loss = model.lm().forward({.ids = b.ids, .prefix = prefix, .targets = b.targets});
    model.lm().backward();
    model.adapter()->backward(model.lm().prefix_grad());
    return {loss, b.ids.numel()};
  }
  float eval(Model& model) {
    model.adapter()->forward(prefix, data.user, data.item);
    return model.lm().forward({.ids = data.ids, .prefix = prefix, .targets = data.targets});
  }
};

}  // namespace

int main() {
  constexpr std::size_t batch = 2, text = 6, prefix_len = Adapter::prefix_length;
  p4lm::ModelConfig config{.arch = "llama",
                           .vocab_size = 32,
                           .d_model = 16,
                           .n_layers = 1,
                           .n_heads = 2,
                           .n_kv_heads = 1,
                           .d_ff = 32,
                           .max_seq = 16};
  p4lm::Rng rng(7);
  LM lm(config);
  lm.init_random(rng);
  Adapter adapter(config.d_model);
  adapter.init_random(rng);
  Model model(lm, &adapter);

  FixedBatch objective;
  Batch& b = objective.data;
  b.user = p4lm::CpuTensor<float>(p4lm::Shape{batch, cf_dim});
  b.item = p4lm::CpuTensor<float>(p4lm::Shape{batch, cf_dim});
  for (auto* t : {&b.user, &b.item})
    for (auto& x : t->span()) x = static_cast<float>(rng.normal());
  b.ids = p4lm::CpuTensor<std::int32_t>(p4lm::Shape{batch, text});
  b.targets = p4lm::CpuTensor<std::int32_t>(p4lm::Shape{batch, prefix_len + text}, std::int32_t{-100});
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t t = 0; t < text; ++t)
      b.ids.data()[i * text + t] = static_cast<std::int32_t>((3 * i + 5 * t) % 32);
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t t = 0; t + 1 < text; ++t)
      b.targets.data()[i * (prefix_len + text) + prefix_len + t] = b.ids.data()[i * text + t + 1];
  objective.prefix = p4lm::CpuTensor<float>(p4lm::Shape{batch, prefix_len, config.d_model});

  p4lm::train::TrainerOptions options;
  options.phases = {{.steps = 1, .schedule = {.peak_lr = 1e-3, .total_steps = 2}, .optimizer = {.lr = 1e-3}}};
  options.final_checkpoint = false;
  options.progress = false;
  const float before = objective.eval(model);
  p4lm::train::Trainer trainer(model, objective, options);
  const auto result = trainer.fit();
  const float after = objective.eval(model);

  std::printf("p4lm %s: %zu parameters, %zu step, loss %.6f -> %.6f\n", p4lm::version_string,
              lm.num_parameters() + adapter.num_parameters(), result.step, before, after);
  const bool ok = result.step == 1 && std::isfinite(before) && std::isfinite(after) && after < before;
  if (!ok) std::fprintf(stderr, "test_package: the training step failed\n");

  constexpr std::size_t new_tokens = 3;
  adapter.forward(objective.prefix, b.user, b.item);
  const std::vector<std::vector<std::int32_t>> prompts{{b.ids.data()[0]}, {b.ids.data()[text]}};
  const auto g =
      p4lm::generate(lm, prompts, {.max_new_tokens = new_tokens, .temperature = 0.0}, objective.prefix);
  bool generated = g.tokens.size() == batch;
  for (const auto& row : g.tokens) {
    generated = generated && row.size() == new_tokens;
    for (const std::int32_t id : row) generated = generated && id >= 0 && id < 32;
  }
  if (!generated) std::fprintf(stderr, "test_package: generation failed\n");
  return ok && generated ? 0 : 1;
}
