// A downstream program, built outside the tree from <p4lm/p4lm.hpp> only: it finds the bundled data,
// trains a CF-conditioned model (a tiny random Llama with a CFAdapter whose soft tokens are its
// prefix) for a few steps through the shared Trainer with AdamW, then generates from the result with
// the Generator, conditioned on the same CF prefix. Exit 1 (with the reason) unless the loss is
// finite and falls, the generated ids are in the vocabulary and as many as asked, their
// log-probabilities are finite and <= 0, and greedy decoding and seeded sampling repeat exactly.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
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

int failures = 0;
void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  const auto data = p4lm::data_path("movielens/ml-latest-small/movies.csv");
  std::cout << "p4lm " << p4lm::version_string << " data: " << data.parent_path().string() << '\n';

  constexpr std::size_t batch = 2, text = 6, prefix_len = Adapter::prefix_length, steps = 5;
  constexpr std::size_t vocab = 32, new_tokens = 5;
  p4lm::ModelConfig config{.arch = "llama",
                           .vocab_size = vocab,
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
      b.ids.data()[i * text + t] = static_cast<std::int32_t>((3 * i + 5 * t) % vocab);
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t t = 0; t + 1 < text; ++t)
      b.targets.data()[i * (prefix_len + text) + prefix_len + t] = b.ids.data()[i * text + t + 1];
  objective.prefix = p4lm::CpuTensor<float>(p4lm::Shape{batch, prefix_len, config.d_model});

  // Training: a few AdamW steps through the Trainer.
  p4lm::train::TrainerOptions options;
  options.phases = {
      {.steps = steps, .schedule = {.peak_lr = 1e-2, .total_steps = steps + 1}, .optimizer = {.lr = 1e-2}}};
  options.final_checkpoint = false;
  options.progress = false;
  const float before = objective.eval(model);
  p4lm::train::Trainer trainer(model, objective, options);
  const auto result = trainer.fit();
  const float after = objective.eval(model);
  std::printf("trained %zu parameters for %zu steps: loss %.6f -> %.6f\n",
              lm.num_parameters() + adapter.num_parameters(), result.step, before, after);
  expect(result.step == steps, "the Trainer ran every step");
  expect(std::isfinite(before) && std::isfinite(after) && after < before, "training lowered the loss");

  // Generation from the trained model, conditioned on each user's CF prefix, prompted with the first
  // token of its text.
  p4lm::CpuTensor<float> prefix(p4lm::Shape{batch, prefix_len, config.d_model});
  adapter.forward(prefix, b.user, b.item);
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::size_t i = 0; i < batch; ++i) prompts.push_back({b.ids.data()[i * text]});
  p4lm::Generator generator(lm);
  const p4lm::SamplingOptions greedy{.max_new_tokens = new_tokens, .temperature = 0.0};
  const p4lm::SamplingOptions sampled{
      .max_new_tokens = new_tokens, .temperature = 0.8, .top_k = 8, .seed = 11};
  const auto g1 = generator.generate(prompts, greedy, prefix);
  const auto g2 = p4lm::generate(lm, prompts, greedy, prefix);  // a fresh cache: the same tokens
  const auto s1 = generator.generate(prompts, sampled, prefix);
  const auto s2 = generator.generate(prompts, sampled, prefix);
  for (const auto* g : {&g1, &s1}) {
    expect(g->tokens.size() == batch && g->logprobs.size() == batch, "one generation per prompt");
    for (std::size_t i = 0; i < g->tokens.size(); ++i) {
      expect(g->tokens[i].size() == new_tokens && g->logprobs[i].size() == new_tokens,
             "max_new_tokens tokens and log-probabilities (no EOS set)");
      for (const std::int32_t id : g->tokens[i])
        expect(id >= 0 && std::size_t(id) < vocab, "ids in the vocabulary");
      for (const float lp : g->logprobs[i]) expect(std::isfinite(lp) && lp <= 0.0f, "log-probabilities <= 0");
    }
  }
  expect(g1.tokens == g2.tokens, "greedy decoding repeats exactly");
  expect(s1.tokens == s2.tokens, "seeded sampling repeats exactly");
  for (std::size_t i = 0; i < g1.tokens.size(); ++i) {
    std::printf("prompt %zu greedy:", i);
    for (const std::int32_t id : g1.tokens[i]) std::printf(" %d", id);
    std::printf(" | sampled:");
    for (const std::int32_t id : s1.tokens[i]) std::printf(" %d", id);
    std::printf("\n");
  }
  if (failures > 0) return 1;
  std::printf("consumer: ok\n");
  return 0;
}
