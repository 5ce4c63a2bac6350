// nn/block.hpp with the modules it is built from (nn/attention.hpp, nn/mlp.hpp, nn/norm.hpp,
// nn/linear.hpp, nn/parameter_set.hpp): every parameter's and the input's gradient against central
// differences in double, for the three assemblies the library uses — Llama's pre-norm block (RMSNorm,
// grouped-query heads with RoPE, SwiGLU, causal), GPT-2's (LayerNorm, fused qkv with biases, GELU) and
// BERT's post-norm block (LayerNorm after each residual, biases, no RoPE, bidirectional, exact GELU) —
// with padding (key lengths) in the batch.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/nn/block.hpp"
#include "p4lm/nn/workspace.hpp"

namespace {

using namespace p4lm;
using View = TensorView<backend::cpu, double>;
constexpr std::size_t Bn = 2, S = 5, C = 8, H = 2, D = 4, F = 12;

using Take = nn::Take<backend::cpu, double>;

template <class BlockT>
void check_block(BlockT& block, nn::ParameterSet<backend::cpu, double>& set, bool causal) {
  Rng rng(5, 2);
  for (auto& p : set.parameters())
    for (auto& v : p.value.span())
      v = (p.value.rank() == 1 && p.name.find("norm") != std::string::npos ? 1.0 : 0.0) + 0.3 * rng.normal();
  CpuTensor<double> x(Shape{Bn, S, C}), r(Shape{Bn, S, C});
  for (auto& v : x.span()) v = rng.normal();
  for (auto& v : r.span()) v = rng.normal();
  CpuTensor<std::int32_t> positions(Shape{S}), key_lengths(Shape{Bn});
  for (std::size_t s = 0; s < S; ++s) positions.data()[s] = static_cast<std::int32_t>(s);
  key_lengths.data()[0] = 5, key_lengths.data()[1] = 3;
  typename BlockT::AttentionPass pass;
  pass.positions = positions.view();
  pass.options.causal = causal;
  pass.options.key_lengths = key_lengths.view();
  pass.options.blas_min_work = 0;  // the BLAS paths too, on these small shapes

  CpuTensor<double> work, scratch;
  typename BlockT::Acts acts;
  typename BlockT::Scratch s;
  for (int round = 0; round < 2; ++round) {
    Take t{round ? work.data() : nullptr};
    acts = block.layout(t, Bn, S, S);
    if (!round) work.resize(Shape{t.off});
    Take u{round ? scratch.data() : nullptr};
    s = block.layout_scratch(u, Bn, S);
    if (!round) scratch.resize(Shape{u.off});
  }
  auto loss = [&] {
    block.forward(acts, x, pass);
    const View out = BlockT::output(acts);
    double sum = 0;
    for (std::size_t i = 0; i < out.numel(); ++i) sum += out.data()[i] * r.data()[i];
    return sum;
  };
  loss();
  set.zero_grad();
  CpuTensor<double> dx(r);  // in: d loss / d output; out: d loss / d x
  block.backward(dx, acts, x, pass, s);
  const CpuTensor<double> dx_analytic(dx);
  // Gradients below 1e-4 in magnitude are compared absolutely (key biases get exactly zero: a softmax
  // does not see a constant added to every key).
  for (auto& p : set.parameters()) {
    const CpuTensor<double> g(p.grad);
    const auto report = check_gradient(loss, p.value, g.view(), 1e-6, 1e-4);
    INFO(p.name << ": " << report.str());
    CHECK(report.max_relative_error < 1e-4);
  }
  const auto report = check_gradient(loss, x.view(), dx_analytic.view(), 1e-6, 1e-4);
  INFO("input: " << report.str());
  CHECK(report.max_relative_error < 1e-4);
}

template <class Norm, class Attn, class Mlp, class Placement = nn::placement::PreNorm>
struct Assembly : nn::Block<backend::cpu, Norm, Attn, Mlp, double, Placement> {
  using AttentionPass = typename Attn::Pass;
};

}  // namespace

TEST_CASE("Llama block (RMSNorm, grouped-query RoPE attention, SwiGLU): gradients match finite differences",
          "[nn][block]") {
  const std::size_t KV = 1;
  std::vector<ParameterSpec> specs;
  auto add = [&](std::vector<ParameterSpec> more) { specs.insert(specs.end(), more.begin(), more.end()); };
  add(nn::RMSNorm<backend::cpu, double>::specs("attention_norm", C));
  add(nn::Linear<backend::cpu, double>::specs("wq", C, H * D, false));
  add(nn::Linear<backend::cpu, double>::specs("wk", C, KV * D, false));
  add(nn::Linear<backend::cpu, double>::specs("wv", C, KV * D, false));
  add(nn::Linear<backend::cpu, double>::specs("wo", H * D, C, false));
  add(nn::RMSNorm<backend::cpu, double>::specs("ffn_norm", C));
  add(nn::Linear<backend::cpu, double>::specs("w1", C, F, false));
  add(nn::Linear<backend::cpu, double>::specs("w2", F, C, false));
  add(nn::Linear<backend::cpu, double>::specs("w3", C, F, false));
  nn::ParameterSet<backend::cpu, double> set(specs, "test");
  using Lin = nn::Linear<backend::cpu, double>;
  using Attn = nn::Attention<backend::cpu, attention::Causal, double>;
  using Mlp = nn::MLP<backend::cpu, nn::activation::SwiGLU, double>;
  Assembly<nn::RMSNorm<backend::cpu, double>, Attn, Mlp> block;
  block.norm1 = nn::RMSNorm<backend::cpu, double>::bind(set, "attention_norm", 1e-5);
  block.attn = Attn::split({H, KV, D, 10000.0}, Lin::bind(set, "wq", false), Lin::bind(set, "wk", false),
                           Lin::bind(set, "wv", false), Lin::bind(set, "wo", false));
  block.norm2 = nn::RMSNorm<backend::cpu, double>::bind(set, "ffn_norm", 1e-5);
  block.mlp = Mlp{Lin::bind(set, "w1", false), Lin::bind(set, "w2", false), Lin::bind(set, "w3", false)};
  check_block(block, set, true);
}

TEST_CASE("GPT-2 block (LayerNorm, fused qkv with biases, GELU): gradients match finite differences",
          "[nn][block]") {
  std::vector<ParameterSpec> specs;
  auto add = [&](std::vector<ParameterSpec> more) { specs.insert(specs.end(), more.begin(), more.end()); };
  add(nn::LayerNorm<backend::cpu, double>::specs("ln_1", C));
  add(nn::Linear<backend::cpu, double>::specs("c_attn", C, 3 * C, true));
  add(nn::Linear<backend::cpu, double>::specs("c_proj", C, C, true));
  add(nn::LayerNorm<backend::cpu, double>::specs("ln_2", C));
  add(nn::Linear<backend::cpu, double>::specs("c_fc", C, F, true));
  add(nn::Linear<backend::cpu, double>::specs("mlp_proj", F, C, true));
  nn::ParameterSet<backend::cpu, double> set(specs, "test");
  using Lin = nn::Linear<backend::cpu, double>;
  using Norm = nn::LayerNorm<backend::cpu, double>;
  using Attn = nn::Attention<backend::cpu, attention::Causal, double>;
  using Mlp = nn::MLP<backend::cpu, nn::activation::Gelu, double>;
  Assembly<Norm, Attn, Mlp> block;
  block.norm1 = Norm::bind(set, "ln_1", 1e-5);
  block.attn = Attn::fused({H, H, D, 0.0}, Lin::bind(set, "c_attn", true), Lin::bind(set, "c_proj", true));
  block.norm2 = Norm::bind(set, "ln_2", 1e-5);
  block.mlp = Mlp{Lin::bind(set, "c_fc", true), Lin::bind(set, "mlp_proj", true)};
  check_block(block, set, true);
}

TEST_CASE("BERT block (post-norm, bidirectional, biases, exact GELU): gradients match finite differences",
          "[nn][block]") {
  std::vector<ParameterSpec> specs;
  auto add = [&](std::vector<ParameterSpec> more) { specs.insert(specs.end(), more.begin(), more.end()); };
  add(nn::Linear<backend::cpu, double>::specs("query", C, C, true));
  add(nn::Linear<backend::cpu, double>::specs("key", C, C, true));
  add(nn::Linear<backend::cpu, double>::specs("value", C, C, true));
  add(nn::Linear<backend::cpu, double>::specs("attn_out", C, C, true));
  add(nn::LayerNorm<backend::cpu, double>::specs("attn_norm", C));
  add(nn::Linear<backend::cpu, double>::specs("intermediate", C, F, true));
  add(nn::Linear<backend::cpu, double>::specs("output", F, C, true));
  add(nn::LayerNorm<backend::cpu, double>::specs("out_norm", C));
  nn::ParameterSet<backend::cpu, double> set(specs, "test");
  using Lin = nn::Linear<backend::cpu, double>;
  using Norm = nn::LayerNorm<backend::cpu, double>;
  using Attn = nn::Attention<backend::cpu, attention::Bidirectional, double>;
  using Mlp = nn::MLP<backend::cpu, nn::activation::GeluErf, double>;
  Assembly<Norm, Attn, Mlp, nn::placement::PostNorm> block;
  block.attn = Attn::split({H, H, D, 0.0}, Lin::bind(set, "query", true), Lin::bind(set, "key", true),
                           Lin::bind(set, "value", true), Lin::bind(set, "attn_out", true));
  block.norm1 = Norm::bind(set, "attn_norm", 1e-12);
  block.mlp = Mlp{Lin::bind(set, "intermediate", true), Lin::bind(set, "output", true)};
  block.norm2 = Norm::bind(set, "out_norm", 1e-12);
  check_block(block, set, false);
}

TEST_CASE("ParameterSet: one allocation, names, freezing, and errors naming the owner",
          "[nn][parameter_set]") {
  std::vector<ParameterSpec> specs = {
      {"a.weight", {3, 2}, true}, {"a.bias", {3}, false}, {"b.weight", {2, 2}, true}};
  nn::ParameterSet<backend::cpu, float> set(specs, "Toy");
  CHECK(set.size() == 3);
  CHECK(set.numel() == 6 + 3 + 4);
  CHECK(set["a.bias"].value.shape() == Shape{3});
  CHECK_FALSE(set["a.bias"].decay);
  // Views are 64-byte aligned windows of the single allocation.
  CHECK(set["a.bias"].value.data() == set.values().data() + 16);
  CHECK(set.freeze("a.*") == 2);
  CHECK_FALSE(set["a.weight"].trainable);
  CHECK(set["b.weight"].trainable);
  CHECK_THROWS_WITH(set["nope"], Catch::Contains("Toy: no parameter named 'nope'"));
  std::vector<ParameterSpec> twice = {{"x", {1}, false}, {"x", {1}, false}};
  CHECK_THROWS_WITH((nn::ParameterSet<backend::cpu, float>(twice, "Toy")), Catch::Contains("declared twice"));
}
