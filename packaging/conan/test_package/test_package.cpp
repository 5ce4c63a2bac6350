// conan create's test of the p4lm package: from the umbrella header alone, one training step of a
// tiny random Llama conditioned on CF embeddings through a CFAdapter (the adapter's soft tokens are
// the LM's prefix), with AdamW on both. Fails unless the loss is finite before and after the step
// and the step lowers it on the batch it was taken on.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <p4lm/p4lm.hpp>

int main() {
  constexpr int cf_dim = 8;
  constexpr std::size_t batch = 2, text = 6;
  p4lm::ModelConfig config{.arch = "llama",
                           .vocab_size = 32,
                           .d_model = 16,
                           .n_layers = 1,
                           .n_heads = 2,
                           .n_kv_heads = 1,
                           .d_ff = 32,
                           .max_seq = 16};
  p4lm::Rng rng(7);
  p4lm::LlamaLM<> lm(config);
  lm.init_random(rng);
  p4lm::CFAdapter<cf_dim> adapter(config.d_model);
  adapter.init_random(rng);
  constexpr std::size_t prefix_len = p4lm::CFAdapter<cf_dim>::prefix_length;

  // A batch: random user/item embeddings and token ids; each text position predicts the next token,
  // the prefix positions and the last text position predict nothing.
  p4lm::CpuTensor<float> user(p4lm::Shape{batch, cf_dim}), item(p4lm::Shape{batch, cf_dim});
  for (auto* t : {&user, &item})
    for (auto& x : t->span()) x = static_cast<float>(rng.normal());
  p4lm::CpuTensor<std::int32_t> ids(p4lm::Shape{batch, text});
  p4lm::CpuTensor<std::int32_t> targets(p4lm::Shape{batch, prefix_len + text}, std::int32_t{-100});
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t t = 0; t < text; ++t)
      ids.data()[b * text + t] = static_cast<std::int32_t>((3 * b + 5 * t) % 32);
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t t = 0; t + 1 < text; ++t)
      targets.data()[b * (prefix_len + text) + prefix_len + t] = ids.data()[b * text + t + 1];
  p4lm::CpuTensor<float> prefix(p4lm::Shape{batch, prefix_len, config.d_model});

  p4lm::AdamW<> lm_opt(lm.parameters(), {.lr = 1e-3});
  p4lm::AdamW<> adapter_opt(adapter.parameters(), {.lr = 1e-3});
  auto loss_of_batch = [&] {
    adapter.forward(prefix, user, item);
    return lm.forward({.ids = ids, .prefix = prefix, .targets = targets});
  };

  // The step.
  const float before = loss_of_batch();
  lm.zero_grad();
  adapter.zero_grad();
  lm.backward();
  adapter.backward(lm.prefix_grad());
  const double lm_norm = lm_opt.step(lm.parameters());
  const double adapter_norm = adapter_opt.step(adapter.parameters());
  const float after = loss_of_batch();

  std::printf("p4lm %s: %zu LM + %zu adapter parameters, loss %.6f -> %.6f (grad norms %.4g, %.4g)\n",
              p4lm::version_string, lm.num_parameters(), adapter.num_parameters(), before, after, lm_norm,
              adapter_norm);
  const bool ok = std::isfinite(before) && std::isfinite(after) && std::isfinite(lm_norm) &&
                  std::isfinite(adapter_norm) && adapter_norm > 0 && after < before;
  if (!ok) std::fprintf(stderr, "test_package: the training step failed\n");
  return ok ? 0 : 1;
}
