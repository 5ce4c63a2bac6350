// SFT and the two-stage warm start on tiny models: end-to-end finite-difference gradients from the
// adapter parameters through the prefix and the LM to the loss (double), a frozen transformer that
// stays bit-identical in stage 1, bit-identical resume after a "kill", and a tiny run that learns a
// user-dependent pitch (held-out loss drops, and real user embeddings beat shuffled ones).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/train/sft.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/soft_prompt.hpp"

namespace {

using p4lm::CpuTensor;
using p4lm::Shape;

p4lm::ModelConfig tiny_config(const std::string& arch, std::size_t vocab = 16) {
  p4lm::ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = arch == "llama" ? 1 : 2;
  c.d_ff = 16;
  c.max_seq = 24;
  c.tied_head = arch == "gpt2";
  return c;
}

// Synthetic pitch corpus: user u's pitch repeats the user's favourite token, then names the item.
// The favourite is a function of the user's CF embedding (the sign pattern of two coordinates), so
// only a model that reads the embedding can predict it.
constexpr int kDim = 4;
struct Synthetic {
  p4lm::cf::Embeddings<kDim> cf{8, 4};
  std::vector<p4lm::train::SftSequence> train, held_out;
};

Synthetic make_synthetic(std::uint64_t seed) {
  Synthetic s;
  p4lm::Rng rng(seed);
  for (std::size_t i = 0; i < s.cf.users.size(); ++i) s.cf.users.data()[i] = static_cast<float>(rng.normal());
  for (std::size_t i = 0; i < s.cf.items.size(); ++i) s.cf.items.data()[i] = static_cast<float>(rng.normal());
  auto favourite = [&](int u) {
    const float* e = s.cf.users.data() + u * kDim;
    return 5 + (e[0] > 0 ? 1 : 0) + (e[1] > 0 ? 2 : 0);  // tokens 5..8
  };
  for (int u = 0; u < 8; ++u)
    for (int i = 0; i < 4; ++i) {
      p4lm::train::SftSequence q;
      q.user = u, q.item = i, q.user_id = u, q.movie_id = i;
      const int f = favourite(u);
      q.ids = {1, 10 + i, 3, f, f, 10 + i, 4, 2};  // BOS, item token, marker | fav, fav, item, word, EOS
      q.prompt_len = 3;
      ((u + i) % 4 == 0 ? s.held_out : s.train).push_back(q);  // every user and item is seen in training
    }
  return s;
}

template <class LM>
void init_model(LM& lm, std::uint64_t seed) {
  p4lm::Rng rng(seed);
  lm.init_random(rng, 0.2);
}

template <class LM, class Adapter>
std::vector<typename LM::value_type> snapshot(LM& lm, Adapter* adapter) {
  std::vector<typename LM::value_type> out;
  for (const auto& p : lm.parameters())
    out.insert(out.end(), p.value.data(), p.value.data() + p.value.numel());
  if (adapter)
    for (const auto& p : adapter->parameters())
      out.insert(out.end(), p.value.data(), p.value.data() + p.value.numel());
  return out;
}

}  // namespace

TEST_CASE("sft data: prompts, truncation and the loss mask", "[train][sft]") {
  using namespace p4lm::train;
  CHECK(first_sentence("One. Two. Three.") == "One.");
  CHECK(first_sentence("No end") == "No end");
  CHECK(item_prompt("Heat", 1995, {"Action", "Crime"}, "Robbers rob. Cops chase.") ==
        "Heat (1995). Action, Crime. Robbers rob.");
  CHECK(item_prompt("X", std::nullopt, {}, "") == "X.");
  // A byte-level codec: one token per character, BOS 1, EOS 2.
  TextCodec codec;
  codec.encode = [](std::string_view s) { return std::vector<std::int32_t>(s.begin(), s.end()); };
  codec.bos = 1, codec.eos = 2, codec.vocab_size = 256;
  PromptOptions o{.max_prompt_tokens = 12, .max_pitch_tokens = 5, .marker = ">"};
  const auto seq = encode_example(codec, "abcdefghijklmnop", "wxyz123", o);
  // BOS + 9 prompt chars + "\n>" = 12; pitch truncated to 4 + EOS.
  REQUIRE(seq.prompt_len == 12);
  REQUIRE(seq.ids.size() == 17);
  CHECK(seq.ids[0] == 1);
  CHECK(seq.ids[9] == 'i');
  CHECK(seq.ids[11] == '>');
  CHECK(seq.ids[12] == 'w');
  CHECK(seq.ids[16] == 2);
  SftBatch batch;
  const SftSequence* ptrs[] = {&seq};
  batch.build(ptrs, 2);
  CHECK(batch.ids.shape() == Shape{1, 16});
  CHECK(batch.targets.shape() == Shape{1, 18});
  CHECK(batch.counted == 5);  // w x y z EOS
  for (std::size_t s = 0; s < 18; ++s) {
    const std::int32_t t = batch.targets.data()[s];
    if (s < 2 + 11)
      CHECK(t == p4lm::ops::ignore_index_default);
    else
      CHECK(t == seq.ids[s - 2 + 1]);
  }
}

TEST_CASE("sft data: the link sentence's characters map to its tokens", "[train][sft]") {
  using namespace p4lm::train;
  // Two characters per token; decoding adds a leading space, as sentencepiece's dummy prefix does.
  TextCodec codec;
  codec.encode = [](std::string_view s) {
    std::vector<std::int32_t> ids;
    for (std::size_t k = 0; k < s.size(); k += 2) ids.push_back(static_cast<std::int32_t>(k / 2 + 10));
    return ids;
  };
  const std::string pitch = "Hook. Link me. End.";
  codec.decode = [&](std::span<const std::int32_t> ids) {
    std::string out = " ";
    for (auto id : ids) out += pitch.substr(static_cast<std::size_t>(id - 10) * 2, 2);
    return out;
  };
  codec.bos = 1, codec.eos = 2;
  // "Link me." is characters [6, 14): tokens 3 ("Li") to 6 ("e."), i.e. [3, 7).
  const auto [first, last] = tokens_covering(codec, pitch, codec.encode(pitch), 6, 14);
  CHECK(first == 3);
  CHECK(last == 7);
  PromptOptions o{.max_prompt_tokens = 8, .max_pitch_tokens = 6, .marker = ">"};
  const std::size_t span[] = {6, 14};
  const auto seq = encode_example(codec, "abc", pitch, o, span);
  // Prompt: BOS + 2 tokens + the marker's 1 token; the pitch is cut to 5 tokens, so the link keeps 2.
  CHECK(seq.link_begin == seq.prompt_len + 3);
  CHECK(seq.link_end == seq.prompt_len + 5);
  CHECK(encode_example(codec, "abc", pitch, o).link_end == 0);  // no span, no link tokens
}

TEMPLATE_TEST_CASE("sft: gradients flow from the loss through the LM into the adapters (double)",
                   "[train][sft][gradcheck]", p4lm::arch::Llama, p4lm::arch::GPT2) {
  using LM = p4lm::CausalLM<p4lm::backend::cpu, TestType, p4lm::attention::Causal, double>;
  using Adapter = p4lm::CFAdapter<kDim, 2, double>;
  LM lm(tiny_config(TestType::name));
  init_model(lm, 3);
  Adapter adapter(lm.config().d_model, 6);
  p4lm::Rng rng(4);
  adapter.init_random(rng, 0.5);
  auto data = make_synthetic(5);
  // Two sequences of different lengths (padding included).
  data.train[1].ids.pop_back();
  data.train[1].ids.back() = 2;
  const p4lm::train::SftSequence* ptrs[] = {&data.train[0], &data.train[1]};
  p4lm::train::SftBatch batch;
  batch.build(ptrs, Adapter::prefix_length);
  CpuTensor<double> prefix(Shape{2, Adapter::prefix_length, lm.config().d_model});
  auto loss = [&] {
    adapter.forward(prefix, data.cf, batch.users, batch.items);
    return static_cast<double>(
        lm.forward({.ids = batch.ids, .prefix = prefix, .targets = batch.targets, .lengths = batch.lengths}));
  };
  SECTION("stage 2: adapters and transformer") {
    lm.zero_grad();
    adapter.zero_grad();
    loss();
    lm.backward();
    adapter.backward(lm.prefix_grad());
    for (auto& p : adapter.parameters()) {
      const CpuTensor<double> analytic(p.grad);
      const auto report = p4lm::check_gradient(loss, p.value, analytic, 1e-5);
      INFO(p.name << ": " << report.str());
      CHECK(report.max_relative_error < 1e-5);
    }
    auto& wte = lm.parameters()[0];
    const CpuTensor<double> analytic(wte.grad);
    const auto report = p4lm::check_gradient(loss, wte.value, analytic, 1e-5);
    INFO(wte.name << ": " << report.str());
    CHECK(report.max_relative_error < 1e-5);
  }
  SECTION("stage 1: transformer frozen, adapters still get the full gradient") {
    lm.freeze("*");
    lm.zero_grad();
    adapter.zero_grad();
    loss();
    lm.backward();
    adapter.backward(lm.prefix_grad());
    for (const auto& p : lm.parameters())
      for (double g : p.grad.span()) REQUIRE(g == 0.0);
    auto& w = adapter.parameters()[6];  // adapter.item.fc2.weight
    const CpuTensor<double> analytic(w.grad);
    const auto report = p4lm::check_gradient(loss, w.value, analytic, 1e-5);
    INFO(w.name << ": " << report.str());
    CHECK(report.max_relative_error < 1e-5);
  }
}

TEMPLATE_TEST_CASE("sft: BOS then soft tokens: gradients reach the adapters and BOS's embedding (double)",
                   "[train][sft][gradcheck]", p4lm::arch::Llama, p4lm::arch::GPT2) {
  using LM = p4lm::CausalLM<p4lm::backend::cpu, TestType, p4lm::attention::Causal, double>;
  using Adapter = p4lm::CFAdapter<kDim, 1, double>;
  using Prompt = p4lm::train::SoftPrompt<LM, Adapter>;
  LM lm(tiny_config(TestType::name));
  init_model(lm, 6);
  Adapter adapter(lm.config().d_model, 6);
  p4lm::Rng rng(7);
  adapter.init_random(rng, 0.5);
  auto data = make_synthetic(8);
  const p4lm::train::SftSequence* ptrs[] = {&data.train[0], &data.train[3]};
  p4lm::train::SftBatch batch;
  batch.build(ptrs, Prompt::length, true);
  // The text starts after BOS; targets keep their positions.
  CHECK(batch.ids.data()[0] == data.train[0].ids[1]);
  CHECK(batch.targets.dim(1) == Prompt::length + data.train[0].ids.size() - 2);
  Prompt soft(1);
  CpuTensor<double> prefix(Shape{2, Prompt::length, lm.config().d_model});
  auto loss = [&] {
    soft.forward(prefix.view(), lm, adapter, data.cf, batch.users, batch.items);
    return static_cast<double>(
        lm.forward({.ids = batch.ids, .prefix = prefix, .targets = batch.targets, .lengths = batch.lengths}));
  };
  // Row 0 of the prefix is BOS's embedding.
  loss();
  const auto& wte = lm.parameters()[0];
  for (std::size_t c = 0; c < lm.config().d_model; ++c)
    CHECK(prefix.data()[c] == wte.value.data()[1 * lm.config().d_model + c]);
  lm.zero_grad();
  adapter.zero_grad();
  loss();
  lm.backward();
  soft.backward(lm, adapter, lm.prefix_grad());
  for (auto* p : {&adapter.parameters()[2], &adapter.parameters()[4], &lm.parameters()[0]}) {
    const CpuTensor<double> analytic(p->grad);
    const auto report = p4lm::check_gradient(loss, p->value, analytic, 1e-5);
    INFO(p->name << ": " << report.str());
    CHECK(report.max_relative_error < 1e-5);
  }
}

TEST_CASE("sft: stage 1 leaves every transformer parameter bit-identical", "[train][sft]") {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<kDim, 1, float>;
  LM lm(tiny_config("llama"));
  init_model(lm, 1);
  Adapter adapter(lm.config().d_model);
  p4lm::Rng rng(2);
  adapter.init_random(rng, 0.2);
  auto data = make_synthetic(3);
  std::vector<float> before;
  for (const auto& p : lm.parameters())
    before.insert(before.end(), p.value.data(), p.value.data() + p.value.numel());
  const auto adapter_before = snapshot<LM, Adapter>(lm, &adapter);
  p4lm::train::SftOptions o{
      .batch_size = 4, .stage1_steps = 12, .stage2_steps = 0, .eval_every = 0, .progress = false};
  p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out, o);
  trainer.fit();
  std::vector<float> after;
  for (const auto& p : lm.parameters())
    after.insert(after.end(), p.value.data(), p.value.data() + p.value.numel());
  REQUIRE(after.size() == before.size());
  CHECK(std::memcmp(after.data(), before.data(), after.size() * sizeof(float)) == 0);
  CHECK(snapshot<LM, Adapter>(lm, &adapter) != adapter_before);  // the adapters did move
  // Stage 2 then moves the transformer.
  p4lm::train::SftOptions o2 = o;
  o2.stage1_steps = 0;
  o2.stage2_steps = 3;
  p4lm::train::SftTrainer<LM, Adapter> stage2(lm, &adapter, &data.cf, data.train, data.held_out, o2);
  stage2.fit();
  std::vector<float> moved;
  for (const auto& p : lm.parameters())
    moved.insert(moved.end(), p.value.data(), p.value.data() + p.value.numel());
  CHECK(std::memcmp(moved.data(), before.data(), moved.size() * sizeof(float)) != 0);
}

TEST_CASE("sft: a killed run resumes bit-identically from its checkpoint", "[train][sft]") {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<kDim, 1, float>;
  const auto root = std::filesystem::temp_directory_path() / "p4lm_test_sft_resume";
  std::filesystem::remove_all(root);
  auto data = make_synthetic(7);
  // 6 steps of stage 1 + 6 of stage 2; the kill happens inside stage 2 (step 8), inside stage 1 (step 4)
  // and at the end of stage 1 (step 6: a checkpoint of the adapters alone, resumed into stage 2).
  p4lm::train::SftOptions o{.batch_size = 4,
                            .stage1_steps = 6,
                            .stage2_steps = 6,
                            .stage2_adapter_lr = 4e-3,  // the adapters' own rate must survive a resume
                            .warmup_steps = 2,
                            .eval_every = 0,
                            .checkpoint_every = 4,
                            .progress = false};
  auto run = [&](const std::filesystem::path& out, std::size_t stop_after, bool resume) {
    LM lm(tiny_config("llama"));
    init_model(lm, 1);
    Adapter adapter(lm.config().d_model);
    p4lm::Rng rng(2);
    adapter.init_random(rng, 0.2);
    auto opts = o;
    opts.stop_after = stop_after;
    p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out, opts,
                                                 out);
    if (resume) REQUIRE(trainer.resume());
    trainer.fit();
    return snapshot<LM, Adapter>(lm, &adapter);
  };
  const auto straight = run(root / "straight", 0, false);
  for (std::size_t kill : {4, 6, 8}) {
    const auto dir = root / ("killed" + std::to_string(kill));
    run(dir, kill, false);
    const auto resumed = run(dir, 0, true);
    INFO("killed after step " << kill);
    REQUIRE(resumed.size() == straight.size());
    CHECK(std::memcmp(resumed.data(), straight.data(), resumed.size() * sizeof(float)) == 0);
  }
  CHECK(std::filesystem::exists(root / "straight" / "train_metrics.csv"));
  // Each evaluation (here at the stages' ends) records the shuffled-users control next to the real loss.
  std::size_t evals = 0;
  p4lm::io::for_each_jsonl(root / "straight" / "eval_metrics.jsonl",
                           [&](const nlohmann::json& j, std::size_t) {
                             ++evals;
                             CHECK(j.at("eval_loss").is_number());
                             CHECK(j.at("eval_loss_shuffled_users").is_number());
                             CHECK(j.contains("eval_link_loss"));
                             CHECK(j.contains("eval_link_loss_shuffled_users"));
                           });
  CHECK(evals == 2);
  std::filesystem::remove_all(root);
}

TEST_CASE("sft: a tiny run lowers held-out loss and uses the user embedding", "[train][sft]") {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<kDim, 1, float>;
  LM lm(tiny_config("llama"));
  init_model(lm, 11);
  Adapter adapter(lm.config().d_model, 16);
  p4lm::Rng rng(12);
  adapter.init_random(rng, 0.2);
  auto data = make_synthetic(13);
  p4lm::train::SftOptions o{.batch_size = 8,
                            .stage1_steps = 60,
                            .stage2_steps = 200,
                            .stage1_lr = 1e-2,
                            .stage2_lr = 1e-2,
                            .eval_every = 0,
                            .progress = false};
  p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out, o);
  const double before = trainer.evaluate(data.held_out);
  const double after = trainer.fit();
  const double shuffled = trainer.evaluate(data.held_out, true);
  INFO("held-out loss before " << before << ", after " << after << ", shuffled users " << shuffled);
  CHECK(after < 0.5 * before);
  CHECK(after < shuffled - 0.1);
  // Split at the user-dependent tokens (the two favourites): that is where shuffling hurts.
  for (auto& q : data.held_out) q.link_begin = 3, q.link_end = 5;
  const auto real = trainer.evaluate_split(data.held_out),
             other = trainer.evaluate_split(data.held_out, true);
  INFO("link tokens: real " << real.link_loss << ", shuffled " << other.link_loss << "; rest: real "
                            << real.other_loss << ", shuffled " << other.other_loss);
  CHECK(real.link_tokens == 2 * data.held_out.size());
  CHECK(real.tokens == 5 * data.held_out.size());
  CHECK(real.loss == Approx(after).epsilon(1e-4));
  CHECK(real.link_loss < other.link_loss - 0.5);
  CHECK(std::abs(real.other_loss - other.other_loss) < other.link_loss - real.link_loss);
}

TEST_CASE("sft: the link-weighted objective is the weighted mean of the pitch tokens' losses",
          "[train][sft]") {
  using LM = p4lm::CausalLM<p4lm::backend::cpu, p4lm::arch::Llama, p4lm::attention::Causal, double>;
  using Adapter = p4lm::CFAdapter<kDim, 1, double>;
  auto train = [](double link_weight, std::size_t link_end, std::size_t link_weight_steps = 0,
                  double link_weight_after = 1.0) {
    LM lm(tiny_config("llama"));
    init_model(lm, 21);
    Adapter adapter(lm.config().d_model);
    p4lm::Rng rng(22);
    adapter.init_random(rng, 0.2);
    auto data = make_synthetic(23);
    for (auto& q : data.train) q.link_begin = q.prompt_len, q.link_end = link_end;
    p4lm::train::SftOptions o{.batch_size = 4,
                              .stage1_steps = 2,
                              .stage2_steps = 3,
                              .stage1_lr = 1e-2,
                              .stage2_lr = 1e-2,
                              .link_weight = link_weight,
                              .link_weight_steps = link_weight_steps,
                              .link_weight_after = link_weight_after,
                              .eval_every = 0,
                              .progress = false};
    p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &data.cf, data.train, data.held_out, o);
    trainer.fit();
    return snapshot<LM, Adapter>(lm, &adapter);
  };
  // Every pitch token in the link: a uniform weight is the plain mean, through the log-prob path.
  const auto plain = train(1.0, 8), uniform = train(3.0, 8);
  REQUIRE(plain.size() == uniform.size());
  double max_diff = 0;
  for (std::size_t i = 0; i < plain.size(); ++i)
    max_diff = std::max(max_diff, std::abs(plain[i] - uniform[i]));
  CHECK(max_diff < 1e-12);
  // Only the two favourites in the link: the weight changes the objective and the trained model.
  const auto weighted = train(3.0, 5);
  double moved = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) moved = std::max(moved, std::abs(plain[i] - weighted[i]));
  CHECK(moved > 1e-4);
  // link_weight_steps: the weight lasts that many global steps, then link_weight_after (default 1).
  CHECK(train(3.0, 5, 5) == weighted);  // 5 steps = the whole run
  const auto first_two = train(3.0, 5, 2);
  CHECK(first_two != weighted);
  CHECK(first_two != plain);
  CHECK(train(3.0, 5, 2, 3.0) == weighted);  // the same weight before and after the switch
  const auto late = train(1.0, 5, 2, 3.0);   // plain for two steps, weighted after
  CHECK(late != weighted);
  CHECK(late != plain);
  CHECK(late != first_two);
  CHECK_THROWS_AS(train(-1.0, 5), p4lm::InvalidArgument);
  CHECK_THROWS_AS(train(3.0, 5, 2, -1.0), p4lm::InvalidArgument);
}
