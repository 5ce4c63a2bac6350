// CausalLM behaviour on tiny random models of both architectures: finite-difference gradients in
// double (parameters and prefix embeddings, with padding and ignored targets), the PPO log-prob path,
// freezing, clone independence, checkpoint round trips, deterministic training, and KV-cache
// generation against full recomputation.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/schedule.hpp"
#include "p4lm/ops/logprob_gather.hpp"
#include "p4lm/text/repetition.hpp"

using namespace p4lm;
namespace fs = std::filesystem;
using Ids = TensorView<backend::cpu, std::int32_t>;

namespace {

ModelConfig tiny(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 13;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = arch == "llama" ? 1 : 2;
  c.d_ff = 12;
  c.max_seq = 24;
  c.tied_head = arch == "gpt2";
  return c;
}

// Every parameter random (norm gains around 1), so no gradient term hides behind a zero.
template <class Model>
void randomize(Model& m, std::uint64_t seed, double scale = 0.3) {
  Rng rng(seed);
  for (auto& p : m.parameters()) {
    const bool gain = p.value.rank() == 1 && p.name.ends_with("weight");
    for (auto& x : p.value.span())
      x = static_cast<typename Model::value_type>((gain ? 1.0 : 0.0) + scale * rng.normal());
  }
}

std::vector<std::int32_t> random_ids(std::size_t n, std::size_t vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = static_cast<std::int32_t>(rng.below(vocab));
  return v;
}

template <class Model>
void gradient_check(Model& m) {
  using T = typename Model::value_type;
  const std::size_t B = 2, P = 2, Tn = 5, S = P + Tn, C = m.config().d_model, V = m.config().vocab_size;
  auto ids = random_ids(B * Tn, V, 1);
  auto targets = random_ids(B * S, V, 2);
  targets[0] = ops::ignore_index_default;  // a prefix position without loss
  targets[4] = ops::ignore_index_default;
  // Sequence 1 has 3 valid text tokens: its targets past P + 3 are valid ids on purpose (they must
  // be ignored because of the padding).
  std::vector<std::int32_t> lengths{5, 3};
  CpuTensor<T> prefix(Shape{B, P, C});
  Rng rng(3);
  for (auto& x : prefix.span()) x = static_cast<T>(0.5 * rng.normal());
  const LMInput<T> in{.ids = Ids(ids.data(), Shape{B, Tn}),
                      .prefix = prefix.view(),
                      .targets = Ids(targets.data(), Shape{B, S}),
                      .lengths = Ids(lengths.data(), Shape{B})};
  m.forward(in);
  m.zero_grad();
  m.backward();
  auto loss = [&] { return static_cast<double>(m.forward(in)); };
  for (auto& p : m.parameters()) {
    CpuTensor<T> analytic(p.grad);
    // eps 1e-5 and a 1e-4 floor: central differences of a double loss carry ~1e-11 of rounding noise,
    // which must not count as relative error on gradients of ~1e-6.
    const auto report = check_gradient(loss, p.value, analytic.view(), 1e-5, 1e-4);
    INFO(p.name << ": " << report.str());
    CHECK(report.max_relative_error < 1e-5);
  }
  m.forward(in);
  m.backward();
  CpuTensor<T> dprefix(m.prefix_grad());
  const auto report = check_gradient(loss, prefix.view(), dprefix.view(), 1e-5, 1e-4);
  INFO("prefix: " << report.str());
  CHECK(report.max_relative_error < 1e-5);
}

}  // namespace

TEST_CASE("finite-difference gradients in double: Llama (GQA, RoPE, SwiGLU, untied head)",
          "[model][gradcheck]") {
  CausalLM<backend::cpu, arch::Llama, attention::Causal, double> m(tiny("llama"));
  randomize(m, 7);
  gradient_check(m);
}

TEST_CASE("finite-difference gradients in double: GPT-2", "[model][gradcheck]") {
  CausalLM<backend::cpu, arch::GPT2, attention::Causal, double> m(tiny("gpt2"));
  randomize(m, 8);
  gradient_check(m);
}

TEST_CASE("padding: a right-padded sequence gives the loss and logits of the unpadded one", "[model]") {
  LlamaLM<> m(tiny("llama"));
  randomize(m, 9);
  auto ids = random_ids(2 * 6, 13, 10);
  auto targets = random_ids(2 * 6, 13, 11);
  std::vector<std::int32_t> lengths{6, 4};
  m.forward({.ids = Ids(ids.data(), Shape{2, 6}), .lengths = Ids(lengths.data(), Shape{2})});
  std::vector<float> logits(m.logits().data() + 6 * 13, m.logits().data() + 6 * 13 + 4 * 13);
  const float batched = m.forward({.ids = Ids(ids.data(), Shape{2, 6}),
                                   .targets = Ids(targets.data(), Shape{2, 6}),
                                   .lengths = Ids(lengths.data(), Shape{2})});
  // The same two sequences one by one.
  const float a =
      m.forward({.ids = Ids(ids.data(), Shape{1, 6}), .targets = Ids(targets.data(), Shape{1, 6})});
  m.forward({.ids = Ids(ids.data() + 6, Shape{1, 4})});
  for (std::size_t i = 0; i < logits.size(); ++i)
    CHECK(m.logits().data()[i] == Approx(logits[i]).margin(1e-5));
  const float b =
      m.forward({.ids = Ids(ids.data() + 6, Shape{1, 4}), .targets = Ids(targets.data() + 6, Shape{1, 4})});
  CHECK(batched == Approx((6 * a + 4 * b) / 10).epsilon(1e-5));
}

TEST_CASE("log-prob path (PPO) agrees with the cross-entropy path", "[model][logprobs]") {
  GPT2LM<> m(tiny("gpt2"));
  randomize(m, 12);
  const std::size_t B = 2, T = 6;
  auto ids = random_ids(B * T, 13, 13);
  auto targets = random_ids(B * T, 13, 14);
  targets[2] = ops::ignore_index_default;
  const LMInput<float> in{.ids = Ids(ids.data(), Shape{B, T}), .targets = Ids(targets.data(), Shape{B, T})};
  const float loss = m.forward(in);
  m.zero_grad();
  m.backward();
  std::vector<float> ce_grad(m.all_grads().data(), m.all_grads().data() + m.all_grads().numel());

  CpuTensor<float> logprobs(Shape{B, T}), entropy(Shape{B, T}), dlogprobs(Shape{B, T});
  m.forward_logprobs(in, logprobs.view(), entropy.view());
  double sum = 0;
  for (std::size_t i = 0; i < B * T; ++i) {
    sum += logprobs.data()[i];
    if (targets[i] == ops::ignore_index_default) CHECK(logprobs.data()[i] == 0.0f);
    CHECK(entropy.data()[i] > 0.0f);
    dlogprobs.data()[i] = targets[i] == ops::ignore_index_default ? 0.0f : -1.0f / 11;
  }
  CHECK(-sum / 11 == Approx(loss).epsilon(1e-5));
  CHECK(m.hidden().shape() == Shape{B, T, 8});
  m.zero_grad();
  m.backward_logprobs(dlogprobs.view());
  for (std::size_t i = 0; i < ce_grad.size(); ++i)
    CHECK(m.all_grads().data()[i] == Approx(ce_grad[i]).margin(1e-6));
}

TEST_CASE("frozen parameters stay bit-identical through AdamW steps", "[model][freeze]") {
  LlamaLM<> m(tiny("llama"));
  Rng rng(1);
  m.init_random(rng, 0.2);
  CHECK(m.freeze("layers.0.*") == 9);
  CHECK(m.freeze(std::regex("tok_.*")) == 1);
  std::vector<std::vector<float>> before;
  for (const auto& p : m.parameters()) before.emplace_back(p.value.data(), p.value.data() + p.value.numel());
  AdamW<float> opt(m.parameters(), {.lr = 1e-2, .weight_decay = 0.1});
  auto ids = random_ids(2 * 8, 13, 2);
  auto targets = random_ids(2 * 8, 13, 3);
  for (int step = 0; step < 3; ++step) {
    m.zero_grad();
    m.forward({.ids = Ids(ids.data(), Shape{2, 8}), .targets = Ids(targets.data(), Shape{2, 8})});
    m.backward();
    opt.step(m.parameters());
  }
  for (std::size_t i = 0; i < m.parameters().size(); ++i) {
    const auto& p = m.parameters()[i];
    const bool same = std::equal(before[i].begin(), before[i].end(), p.value.data());
    INFO(p.name);
    CHECK(same == !p.trainable);
  }
  // The frozen matrices' gradients were never computed.
  const auto g = m.parameter("layers.0.attention.wq.weight").grad;
  CHECK(std::all_of(g.data(), g.data() + g.numel(), [](float x) { return x == 0.0f; }));
  m.unfreeze("*");
  CHECK(std::all_of(m.parameters().begin(), m.parameters().end(), [](const auto& p) { return p.trainable; }));
}

TEST_CASE("clone is an independent copy", "[model][clone]") {
  GPT2LM<> m(tiny("gpt2"));
  randomize(m, 4);
  m.freeze("wpe.*");
  auto ref = m.clone();
  CHECK(!ref.parameter("wpe.weight").trainable);
  auto ids = random_ids(8, 13, 5);
  auto targets = random_ids(8, 13, 6);
  const LMInput<float> in{.ids = Ids(ids.data(), Shape{1, 8}), .targets = Ids(targets.data(), Shape{1, 8})};
  const float l0 = m.forward(in);
  CHECK(ref.forward(in) == l0);
  AdamW<float> opt(m.parameters(), {.lr = 1e-2});
  m.zero_grad();
  m.backward();
  opt.step(m.parameters());
  CHECK(ref.forward(in) == l0);  // the reference did not move
  CHECK(m.forward(in) != l0);
  ref.parameter("ln_f.bias").value.span()[0] += 1.0f;
  CHECK(m.parameter("ln_f.bias").value.span()[0] != ref.parameter("ln_f.bias").value.span()[0]);
}

TEST_CASE("checkpoints: save then load is bit-identical and resumes training exactly",
          "[model][checkpoint]") {
  const fs::path path = fs::temp_directory_path() / "p4lm_test_ckpt" / "model.safetensors";
  LlamaLM<> m(tiny("llama"));
  randomize(m, 5);
  m.freeze("layers.1.ffn_norm.weight");
  AdamW<float> opt(m.parameters(), {.lr = 5e-3, .weight_decay = 0.05});
  auto ids = random_ids(2 * 8, 13, 7);
  auto targets = random_ids(2 * 8, 13, 8);
  const LMInput<float> in{.ids = Ids(ids.data(), Shape{2, 8}), .targets = Ids(targets.data(), Shape{2, 8})};
  auto train_step = [&](LlamaLM<>& model, AdamW<float>& o) {
    model.zero_grad();
    model.forward(in);
    model.backward();
    o.step(model.parameters());
  };
  train_step(m, opt);
  train_step(m, opt);
  save_checkpoint(path, m, &opt, {{"data_position", "42"}});

  AdamW<float> opt2;
  auto loaded = load_checkpoint<LlamaLM<>>(path, &opt2);
  CHECK(loaded.config() == m.config());
  CHECK(opt2.steps() == 2);
  for (std::size_t i = 0; i < m.parameters().size(); ++i) {
    const auto& a = m.parameters()[i];
    const auto& b = loaded.parameters()[i];
    CHECK(a.trainable == b.trainable);
    CHECK(std::memcmp(a.value.data(), b.value.data(), a.value.numel() * sizeof(float)) == 0);
    CHECK(opt2.has_state(i) == a.trainable);  // no moments for the frozen norm, in memory or the file
    if (!a.trainable) continue;
    CHECK(std::memcmp(opt.m(i, a.value.shape()).data(), opt2.m(i, a.value.shape()).data(),
                      a.value.numel() * 4) == 0);
    CHECK(std::memcmp(opt.v(i, a.value.shape()).data(), opt2.v(i, a.value.shape()).data(),
                      a.value.numel() * 4) == 0);
  }
  train_step(m, opt);
  train_step(loaded, opt2);
  CHECK(std::memcmp(m.all_values().data(), loaded.all_values().data(), m.all_values().numel() * 4) == 0);

  // The same bytes when saved again (deterministic writer).
  const fs::path again = path.parent_path() / "again.safetensors";
  save_checkpoint(path, m, &opt);
  save_checkpoint(again, loaded, &opt2);
  CHECK(io::read_file(path) == io::read_file(again));

  SECTION("load_any_lm recognises it") {
    auto any = load_any_lm(path);
    CHECK(std::holds_alternative<LlamaLM<>>(any));
  }
  SECTION("a truncated checkpoint names the file") {
    fs::resize_file(again, fs::file_size(again) - 64);
    CHECK_THROWS_WITH(load_checkpoint<LlamaLM<>>(again), Catch::Contains("again.safetensors"));
  }
  SECTION("a wrong config is refused") {
    auto other = tiny("llama");
    other.d_ff = 16;
    LlamaLM<> wrong(other);
    CHECK_THROWS_WITH(load_checkpoint_into(wrong, path),
                      Catch::Contains("model.safetensors") && Catch::Contains("differs"));
  }
  fs::remove_all(path.parent_path());
}

TEST_CASE("training a tiny model lowers its loss, deterministically", "[model][train]") {
  const std::string corpus = "the cat sat on the mat. the dog sat on the log. ";
  auto run = [&] {
    ModelConfig c = tiny("gpt2");
    c.vocab_size = 32;
    c.d_model = 16;
    c.d_ff = 32;
    c.max_seq = 16;
    GPT2LM<> m(c);
    Rng rng(11);
    m.init_random(rng);
    AdamW<float> opt(m.parameters(), {.lr = 1e-2, .weight_decay = 0.0});
    const WarmupCosine schedule{.peak_lr = 1e-2, .warmup_steps = 5, .total_steps = 80, .min_lr = 1e-3};
    std::vector<std::int32_t> ids(4 * 16), targets(4 * 16);
    std::vector<float> losses;
    for (std::size_t step = 0; step < 80; ++step) {
      for (std::size_t b = 0; b < 4; ++b) {
        const std::size_t start = (step * 7 + b * 13) % (corpus.size() - 17);
        for (std::size_t t = 0; t < 16; ++t) {
          auto code = [](char ch) { return ch == ' ' ? 0 : ch == '.' ? 1 : (ch - 'a') % 30 + 2; };
          ids[b * 16 + t] = code(corpus[start + t]);
          targets[b * 16 + t] = code(corpus[start + t + 1]);
        }
      }
      m.zero_grad();
      losses.push_back(
          m.forward({.ids = Ids(ids.data(), Shape{4, 16}), .targets = Ids(targets.data(), Shape{4, 16})}));
      m.backward();
      opt.step(m.parameters(), schedule.lr(step));
    }
    return losses;
  };
  const auto a = run(), b = run();
  CHECK(a == b);
  INFO("first loss " << a.front() << ", last " << a.back());
  CHECK(a.front() > 3.0f);
  CHECK(a.back() < 1.0f);
}

TEST_CASE("KV-cache generation equals full recomputation", "[model][generate]") {
  auto check = [](auto& m, double temperature) {
    using Model = std::remove_reference_t<decltype(m)>;
    const std::size_t C = m.config().d_model, V = m.config().vocab_size, P = 2;
    const std::vector<std::vector<std::int32_t>> prompts{random_ids(3, V, 1), random_ids(1, V, 2),
                                                         random_ids(5, V, 3)};
    CpuTensor<float> prefix(Shape{3, P, C});
    Rng rng(4);
    for (auto& x : prefix.span()) x = static_cast<float>(rng.normal());
    Generator<Model> gen(m);
    const SamplingOptions o{
        .max_new_tokens = 7, .temperature = temperature, .top_k = 6, .top_p = 0.9, .seed = 5};
    const auto out = gen.generate(prompts, o, prefix.view());
    for (std::size_t b = 0; b < 3; ++b) {
      REQUIRE(out.tokens[b].size() == 7);
      std::vector<std::int32_t> seq = prompts[b];
      seq.insert(seq.end(), out.tokens[b].begin(), out.tokens[b].end() - 1);
      CpuTensor<float> pb(Shape{1, P, C});
      std::copy(prefix.data() + b * P * C, prefix.data() + (b + 1) * P * C, pb.data());
      m.forward({.ids = Ids(seq.data(), Shape{1, seq.size()}), .prefix = pb.view()});
      const auto logits = m.logits();
      for (std::size_t i = 0; i < 7; ++i) {
        const float* row = logits.data() + (P + prompts[b].size() - 1 + i) * V;
        const double t = temperature > 0 ? temperature : 1.0;
        double mx = -1e30, sum = 0;
        std::size_t arg = 0;
        for (std::size_t j = 0; j < V; ++j)
          if (row[j] > mx) mx = row[j], arg = j;
        for (std::size_t j = 0; j < V; ++j) sum += std::exp((row[j] - mx) / t);
        const double logp = (row[out.tokens[b][i]] - mx) / t - std::log(sum);
        CHECK(out.logprobs[b][i] == Approx(logp).margin(1e-4));
        if (temperature == 0) CHECK(out.tokens[b][i] == static_cast<std::int32_t>(arg));
      }
    }
    // Same seed, same samples; EOS stops a sequence.
    const auto again = gen.generate(prompts, o, prefix.view());
    CHECK(again.tokens == out.tokens);
    SamplingOptions stop = o;
    stop.eos = out.tokens[0][2];
    const auto stopped = gen.generate(prompts, stop, prefix.view());
    CHECK(stopped.stopped[0]);
    CHECK(stopped.tokens[0].size() <= 3);
    CHECK(stopped.tokens[0].back() == *stop.eos);
  };
  LlamaLM<> llama(tiny("llama"));
  randomize(llama, 21, 0.5);
  GPT2LM<> gpt2(tiny("gpt2"));
  randomize(gpt2, 22, 0.5);
  check(llama, 0.0);
  check(llama, 0.8);
  check(gpt2, 0.0);
  check(gpt2, 1.3);
}

TEST_CASE("no_repeat_ngram_size refuses repeated n-grams: the refused tokens leave the distribution",
          "[model][generate]") {
  LlamaLM<> m(tiny("llama"));
  randomize(m, 23, 0.5);
  const std::size_t V = m.config().vocab_size;
  const std::vector<std::vector<std::int32_t>> prompts{random_ids(2, V, 7), random_ids(3, V, 8),
                                                       random_ids(1, V, 9)};
  Generator<LlamaLM<>> gen(m);
  const SamplingOptions plain{.max_new_tokens = 18, .temperature = 0};
  // The guard that gives the test something to refuse: plain greedy decoding of this model loops.
  double plain_share = 0;
  for (const auto& t : gen.generate(prompts, plain).tokens) plain_share += text::repeated_ngram_share(t, 2);
  REQUIRE(plain_share > 0);

  for (const double temperature : {0.0, 0.8})
    for (const std::size_t n : {2u, 3u}) {
      SamplingOptions o = plain;
      o.temperature = temperature, o.no_repeat_ngram_size = n, o.seed = 3;
      const auto out = gen.generate(prompts, o);
      for (std::size_t b = 0; b < prompts.size(); ++b) {
        INFO("temperature " << temperature << ", n " << n << ", sequence " << b);
        REQUIRE(out.tokens[b].size() == 18);
        CHECK(text::repeated_ngram_share(out.tokens[b], n) == 0.0);
        // Each step against a full forward: the token and its log-probability under the logits with
        // the refused tokens removed (greedy: the first maximum of what is left).
        std::vector<std::int32_t> seq = prompts[b];
        seq.insert(seq.end(), out.tokens[b].begin(), out.tokens[b].end() - 1);
        m.forward({.ids = Ids(seq.data(), Shape{1, seq.size()})});
        const auto logits = m.logits();
        std::vector<std::int32_t> refused;
        for (std::size_t i = 0; i < 18; ++i) {
          const float* row = logits.data() + (prompts[b].size() - 1 + i) * V;
          const std::vector<std::int32_t> so_far(out.tokens[b].begin(), out.tokens[b].begin() + i);
          text::repeated_ngram_completions(so_far, n, refused);
          const auto is_refused = [&](std::size_t j) {
            return std::find(refused.begin(), refused.end(), std::int32_t(j)) != refused.end();
          };
          const double t = temperature > 0 ? temperature : 1.0;
          double mx = -1e30, sum = 0;
          std::size_t arg = 0;
          for (std::size_t j = 0; j < V; ++j)
            if (!is_refused(j) && row[j] > mx) mx = row[j], arg = j;
          for (std::size_t j = 0; j < V; ++j)
            if (!is_refused(j)) sum += std::exp((row[j] - mx) / t);
          const auto tok = out.tokens[b][i];
          CHECK_FALSE(is_refused(std::size_t(tok)));
          CHECK(out.logprobs[b][i] == Approx((row[tok] - mx) / t - std::log(sum)).margin(1e-4));
          if (temperature == 0) CHECK(tok == static_cast<std::int32_t>(arg));
        }
      }
    }
}

TEST_CASE("sampling at temperature 0 or 1 gives the log-prob ops::logprob_gather_forward gives, bit for bit",
          "[model][generate][logprobs]") {
  // PPO divides the training pass's probabilities by the rollout's: on the same logits they must agree.
  CpuTensor<float> logits(Shape{1, 32000}), lp(Shape{1});
  const std::size_t V = logits.shape().last();
  Rng rng(11);
  for (auto& x : logits.span()) x = static_cast<float>(3 * rng.normal());
  std::vector<std::pair<double, std::int32_t>> scratch;
  for (double temperature : {0.0, 1.0}) {
    Rng sampler(5);
    float logprob = 1;
    std::int32_t id =
        sample_token(logits.data(), V, {.temperature = temperature, .seed = 5}, sampler, logprob, scratch);
    const Ids ids(&id, Shape{1});
    ops::logprob_gather_forward<float>(lp.view(), {}, {}, logits.view(), ids);
    INFO("temperature " << temperature);
    CHECK(logprob == lp.data()[0]);
    CHECK(logprob < 0);
  }
}
