// Model-level CUDA conformance: the same CausalLM type on backend::cuda against backend::cpu, from the
// same parameters and inputs — logits, loss, every parameter gradient and the prefix gradient, one
// AdamW step, a 32-token greedy decode — for the bundled stories260K (Llama, grouped-query heads) and
// a random GPT-2; and CFAdapter's forward and backward. The model headers bring both backends' ops
// into this translation unit (ops/all_backends.hpp), so the CPU reference is the library itself.

#include "conformance.hpp"

#include <p4lm/core/data_dir.hpp>
#include <p4lm/model/causal_lm.hpp>
#include <p4lm/model/cf_adapter.hpp>
#include <p4lm/model/checkpoint.hpp>
#include <p4lm/model/generate.hpp>
#include <p4lm/nn/adamw.hpp>

namespace {

using namespace p4lm;
using conformance::Host;

template <class T>
std::vector<T> host_of(const TensorView<backend::cpu, T>& v) {
  return std::vector<T>(v.data(), v.data() + v.numel());
}
template <class T>
std::vector<T> host_of(const TensorView<backend::cuda, T>& v) {
  return to_vector(v);
}

// Worst |a - b| relative to the largest |a| (a whole tensor's scale), checked against tol.
template <class A, class B>
void expect_close(const std::string& what, const A& cpu, const B& gpu, double tol) {
  const std::vector<float> a = host_of(cpu), b = host_of(gpu);
  REQUIRE(a.size() == b.size());
  double scale = 1e-12, worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(double(a[i])));
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
  }
  INFO(what << ": worst |cpu - cuda| " << worst << " at scale " << scale);
  CHECK(worst / scale <= tol);
}

template <class Cpu, class Gpu>
void copy_parameters(Gpu& gpu, const Cpu& cpu) {
  for (const auto& p : cpu.parameters()) copy(gpu.parameter(p.name).value, p.value);
}

template <class Arch>
void compare_models(CausalLM<backend::cpu, Arch>& cpu, const std::string& label) {
  CausalLM<backend::cuda, Arch> gpu(cpu.config());
  copy_parameters(gpu, cpu);
  Rng rng(7, 1);
  const std::size_t Bn = 3, P = 2, Tn = 9, C = cpu.config().d_model, V = cpu.config().vocab_size;
  Host<std::int32_t> ids = conformance::ids(Shape{Bn, Tn}, rng, std::int32_t(V));
  Host<std::int32_t> targets = conformance::ids(Shape{Bn, P + Tn}, rng, std::int32_t(V));
  Host<std::int32_t> lengths(Shape{Bn});
  lengths.data = {9, 5, 7};  // padding in two rows
  Host<float> prefix = conformance::normal(Shape{Bn, P, C}, rng, 0.1f);
  auto d_ids = conformance::up(ids), d_targets = conformance::up(targets),
       d_lengths = conformance::up(lengths);
  auto d_prefix = conformance::up(prefix);

  // Logits without targets.
  cpu.forward({.ids = ids.view(), .prefix = prefix.view(), .lengths = lengths.view()});
  gpu.forward({.ids = d_ids, .prefix = d_prefix, .lengths = d_lengths});
  expect_close(label + " logits", cpu.logits(), gpu.logits(), 1e-4);

  // Loss and every gradient.
  cpu.zero_grad();
  gpu.zero_grad();
  const float l_cpu = cpu.forward(
      {.ids = ids.view(), .prefix = prefix.view(), .targets = targets.view(), .lengths = lengths.view()});
  const float l_gpu =
      gpu.forward({.ids = d_ids, .prefix = d_prefix, .targets = d_targets, .lengths = d_lengths});
  CHECK(std::abs(l_cpu - l_gpu) <= 1e-4 * std::abs(l_cpu));
  cpu.backward();
  gpu.backward();
  for (const auto& p : cpu.parameters())
    if (p.trainable) expect_close(label + " grad " + p.name, p.grad, gpu.parameter(p.name).grad, 1e-3);
  expect_close(label + " prefix grad", cpu.prefix_grad(), gpu.prefix_grad(), 1e-3);

  // One AdamW step from those gradients.
  AdamW<float> opt_cpu(cpu.parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  AdamW<float, backend::cuda> opt_gpu(gpu.parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  const double n_cpu = opt_cpu.step(cpu.parameters()), n_gpu = opt_gpu.step(gpu.parameters());
  CHECK(std::abs(n_cpu - n_gpu) <= 1e-4 * n_cpu);
  for (const auto& p : cpu.parameters())
    expect_close(label + " after AdamW " + p.name, p.value, gpu.parameter(p.name).value, 1e-5);

  // A 32-token greedy decode: the same tokens.
  SamplingOptions greedy{.max_new_tokens = 32, .temperature = 0};
  const std::vector<std::vector<std::int32_t>> prompts = {{1, 5, 9}, {1, 7}};
  const auto a = generate(cpu, prompts, greedy), b = generate(gpu, prompts, greedy);
  CHECK(a.tokens == b.tokens);
  // The same with repeated bigrams refused (their logits set to -inf on the device): the same tokens
  // and log-probabilities of the distribution without them.
  SamplingOptions refusing = greedy;
  refusing.no_repeat_ngram_size = 2;
  const auto c = generate(cpu, prompts, refusing), d = generate(gpu, prompts, refusing);
  CHECK(c.tokens == d.tokens);
  for (std::size_t i = 0; i < c.logprobs.size(); ++i)
    for (std::size_t t = 0; t < std::min(c.logprobs[i].size(), d.logprobs[i].size()); ++t)
      CHECK(std::abs(c.logprobs[i][t] - d.logprobs[i][t]) <= 1e-4);
}

}  // namespace

TEST_CASE("CUDA CausalLM matches the CPU: stories260K (Llama, grouped-query heads)", "[cuda][model]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  auto cpu = load_llama2c_model(data_path("tiny-lm/stories260K/stories260K.bin"));
  compare_models(cpu, "stories260K");
}

TEST_CASE("CUDA CausalLM matches the CPU: a random GPT-2", "[cuda][model]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  ModelConfig c{.arch = "gpt2",
                .vocab_size = 97,
                .d_model = 48,
                .n_layers = 2,
                .n_heads = 4,
                .n_kv_heads = 4,
                .d_ff = 192,
                .max_seq = 64};
  GPT2LM<> cpu(c);
  Rng rng(3, 0);
  cpu.init_random(rng);
  compare_models(cpu, "gpt2");
}

TEST_CASE("CUDA CFAdapter matches the CPU", "[cuda][model]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  CFAdapter<8, 2> cpu(16);
  CFAdapter<8, 2, float, backend::cuda> gpu(16);
  Rng rng(11, 0);
  cpu.init_random(rng);
  for (const auto& p : cpu.parameters()) copy(gpu.parameters()[&p - cpu.parameters().data()].value, p.value);
  Host<float> user = conformance::normal(Shape{4, 8}, rng), item = conformance::normal(Shape{4, 8}, rng);
  Host<float> prefix(Shape{4, 4, 16}), dprefix = conformance::normal(Shape{4, 4, 16}, rng);
  auto d_user = conformance::up(user), d_item = conformance::up(item), d_dprefix = conformance::up(dprefix);
  CudaTensor<float> d_prefix(Shape{4, 4, 16});
  cpu.forward(prefix.view(), user.view(), item.view());
  gpu.forward(d_prefix, d_user, d_item);
  expect_close("adapter prefix", prefix.view(), d_prefix.view(), 1e-5);
  cpu.zero_grad();
  gpu.zero_grad();
  cpu.backward(dprefix.view());
  gpu.backward(d_dprefix);
  for (std::size_t i = 0; i < cpu.parameters().size(); ++i)
    expect_close("adapter grad " + cpu.parameters()[i].name, cpu.parameters()[i].grad,
                 gpu.parameters()[i].grad, 1e-4);
}

// Always compiled, on any machine: the backend tag reaches every model type.
static_assert(std::is_same_v<CausalLM<backend::cuda, arch::Llama>::backend_type, backend::cuda>);
static_assert(std::is_same_v<CFAdapter<32, 1, float, backend::cuda>::backend_type, backend::cuda>);
static_assert(std::is_same_v<AdamW<float, backend::cuda>::backend_type, backend::cuda>);
