// ops/shape_checks.hpp: every shared check accepts the right shapes and rejects a wrong one with an
// error naming the op and the tensor; the CPU ops reach the same checks (the CUDA ops are covered by
// tests/cuda/test_cuda_shape_checks.cu).

#include <cstdint>
#include <string>

#include <catch2/catch.hpp>

#include <p4lm/core/error.hpp>
#include <p4lm/core/tensor.hpp>
#include <p4lm/ops/ops.hpp>
#include <p4lm/ops/shape_checks.hpp>

using namespace p4lm;

namespace {

using ScView = TensorView<backend::cpu, float>;
using ScIds = TensorView<backend::cpu, std::int32_t>;

// Runs f, which must throw a ShapeError (or InvalidArgument) whose message contains `needle`.
template <class F>
void sc_expect_error(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
    return;
  }
  FAIL("no error thrown; expected one naming \"" << needle << "\"");
}

CpuTensor<float> sc_t(Shape s) {
  return CpuTensor<float>(s, 0.5f);
}
CpuTensor<std::int32_t> sc_ids(Shape s) {
  return CpuTensor<std::int32_t>(s, 0);
}

}  // namespace

TEST_CASE("shape checks: element-wise ops name the tensor", "[ops][shape]") {
  auto a = sc_t({2, 3}), b = sc_t({2, 3}), bad = sc_t({3, 2});
  CHECK_NOTHROW(ops::check::unary_forward<ScView>("gelu_forward", a, b));
  sc_expect_error([&] { ops::check::unary_forward<ScView>("gelu_forward", bad, a); }, "gelu_forward: out");
  sc_expect_error([&] { ops::check::unary_backward<ScView>("gelu_backward", a, bad, a); },
                  "gelu_backward: dout");
  sc_expect_error([&] { ops::check::unary_backward<ScView>("gelu_backward", bad, a, a); },
                  "gelu_backward: dinp");
  sc_expect_error([&] { ops::check::swiglu_forward<ScView>(a, a, bad); }, "swiglu_forward: up");
  sc_expect_error([&] { ops::check::swiglu_backward<ScView>(a, bad, a, a, a); }, "swiglu_backward: dup");
  CHECK_NOTHROW(ops::check::swiglu_backward<ScView>(ScView{}, a, a, a, a));  // dgate not given
  sc_expect_error([&] { ops::check::residual_forward<ScView>(a, a, bad); }, "residual_forward: b");
  sc_expect_error([&] { ops::check::residual_backward<ScView>(ScView{}, bad, a); }, "residual_backward: db");
  sc_expect_error([&] { ops::check::dropout<ScView>("dropout_forward", "out", bad, a, 0.1); },
                  "dropout_forward: out");
  sc_expect_error([&] { ops::check::dropout<ScView>("dropout_forward", "out", a, a, 1.0); },
                  "dropout_forward: dropout probability 1");
  sc_expect_error([&] { ops::check::adamw_update<ScView>(a, a, a, bad, 1); }, "adamw_update: v");
  sc_expect_error([&] { ops::check::paired<ScView>("mse_forward", "target", a, bad); },
                  "mse_forward: target");
  sc_expect_error([&] { ops::check::paired_grad<ScView>("bradley_terry_backward", "dchosen", bad, a); },
                  "bradley_terry_backward: dchosen");
}

TEST_CASE("shape checks: products name the tensor", "[ops][shape]") {
  auto inp = sc_t({2, 3, 4}), w = sc_t({5, 4}), bias = sc_t({5}), out = sc_t({2, 3, 5});
  const auto n = ops::check::matmul_forward<ScView>(out, inp, w, bias);
  CHECK(n.rows == 6);
  CHECK(n.in == 4);
  CHECK(n.out == 5);
  auto bad_w = sc_t({5, 3}), bad_bias = sc_t({4}), bad_out = sc_t({2, 4, 5});
  sc_expect_error([&] { ops::check::matmul_forward<ScView>(out, inp, bad_w, bias); },
                  "matmul_forward: weight");
  sc_expect_error([&] { ops::check::matmul_forward<ScView>(out, inp, w, bad_bias); }, "matmul_forward: bias");
  sc_expect_error([&] { ops::check::matmul_forward<ScView>(bad_out, inp, w, bias); }, "matmul_forward: out");
  sc_expect_error(
      [&] {
        ops::check::matmul_backward<ScView>(sc_t({2, 3, 3}), w, bias, out, inp, w);
      },
      "matmul_backward: dinp");
  sc_expect_error([&] { ops::check::matmul_backward<ScView>(ScView{}, ScView{}, bad_bias, out, inp, w); },
                  "matmul_backward: dbias");

  auto c = sc_t({2, 3, 4}), a = sc_t({2, 3, 5}), b = sc_t({2, 5, 4}), shared_b = sc_t({5, 4});
  const auto bm = ops::check::batched_matmul<ScView>(c, a, b, false, false);
  CHECK(bm.batch == 2);
  CHECK(bm.k == 5);
  CHECK_NOTHROW(ops::check::batched_matmul<ScView>(c, a, shared_b, false, false));
  CHECK_NOTHROW(ops::check::batched_matmul<ScView>(c, sc_t({2, 5, 3}), b, true, false));
  sc_expect_error(
      [&] {
        ops::check::batched_matmul<ScView>(c, a, sc_t({2, 4, 4}), false, false);
      },
      "batched_matmul: b");
  sc_expect_error(
      [&] {
        ops::check::batched_matmul<ScView>(c, sc_t({3, 3, 5}), b, false, false);
      },
      "batched_matmul: a");
  // The CPU op reaches the same check.
  sc_expect_error([&] { ops::matmul_forward<float>(out, inp, bad_w); }, "matmul_forward: weight");
}

TEST_CASE("shape checks: embeddings, norms and RoPE name the tensor", "[ops][shape]") {
  auto ids = sc_ids({2, 3});
  auto wte = sc_t({10, 4}), wpe = sc_t({8, 4}), out = sc_t({2, 3, 4});
  CHECK(ops::check::embedding_forward<ScView, ScIds>(out, ids, wte, wpe) == 4);
  sc_expect_error(
      [&] {
        ops::check::embedding_forward<ScView, ScIds>(out, ids, wte, sc_t({2, 4}));
      },
      "embedding_forward: wpe");
  sc_expect_error(
      [&] {
        ops::check::embedding_forward<ScView, ScIds>(sc_t({2, 3, 5}), ids, wte, ScView{});
      },
      "embedding_forward: out");
  sc_expect_error(
      [&] {
        ops::check::embedding_backward<ScView, ScIds>(sc_t({10, 5}), ScView{}, out, ids);
      },
      "embedding_backward: dwte");

  auto x = sc_t({2, 3, 4}), c4 = sc_t({4}), rows = sc_t({6}), rows_bt = sc_t({2, 3});
  CHECK(ops::check::layernorm_forward<ScView>(x, rows, rows_bt, x, c4, c4) == 4);
  sc_expect_error([&] { ops::check::layernorm_forward<ScView>(x, sc_t({5}), rows, x, c4, c4); },
                  "layernorm_forward: mean");
  sc_expect_error([&] { ops::check::layernorm_backward<ScView>(x, c4, sc_t({3}), x, x, c4, rows, rows); },
                  "layernorm_backward: dbias");
  sc_expect_error([&] { ops::check::rmsnorm_forward<ScView>(x, rows, x, sc_t({3})); },
                  "rmsnorm_forward: weight");
  sc_expect_error(
      [&] {
        ops::check::rmsnorm_backward<ScView>(sc_t({2, 3, 5}), c4, x, x, c4, rows);
      },
      "rmsnorm_backward: dx");

  auto q = sc_t({2, 3, 2, 4});
  CHECK_FALSE(ops::check::rope<ScView, ScIds>("rope_forward", "out", q, q, sc_ids({2, 3})));
  CHECK(ops::check::rope<ScView, ScIds>("rope_forward", "out", q, q, sc_ids({3})));
  sc_expect_error(
      [&] {
        ops::check::rope<ScView, ScIds>("rope_forward", "out", q, q, sc_ids({2, 4}));
      },
      "rope_forward: positions");
  sc_expect_error(
      [&] {
        ops::check::rope<ScView, ScIds>("rope_backward", "dx", sc_t({2, 3, 2, 2}), q, sc_ids({3}));
      },
      "rope_backward: dx");
  sc_expect_error([&] { ops::check::rope<ScView, ScIds>("rope_forward", "out", x, x, sc_ids({3})); },
                  "rope_forward: expected rank 4");
  // The CPU op reaches the same check.
  sc_expect_error([&] { ops::rope_forward<float>(q, q, sc_ids({2, 4})); }, "rope_forward: positions");
}

TEST_CASE("shape checks: attention names the tensor", "[ops][shape]") {
  auto q = sc_t({2, 3, 4, 8}), kv = sc_t({2, 5, 2, 8}), out = sc_t({2, 3, 4, 8}), probs = sc_t({2, 4, 3, 5});
  ops::AttentionOptions<backend::cpu> opt;
  const auto n = ops::check::attention_forward<ScView>(out, probs, q, kv, kv, opt);
  CHECK(n.tk == 5);
  CHECK(n.hkv == 2);
  sc_expect_error(
      [&] {
        ops::check::attention_forward<ScView>(out, probs, q, sc_t({2, 5, 3, 8}), kv, opt);
      },
      "attention_forward: k");
  sc_expect_error(
      [&] {
        ops::check::attention_forward<ScView>(out, probs, q, kv, sc_t({2, 4, 2, 8}), opt);
      },
      "attention_forward: v");
  sc_expect_error(
      [&] {
        ops::check::attention_forward<ScView>(out, sc_t({2, 4, 3, 3}), q, kv, kv, opt);
      },
      "attention_forward: probs");
  sc_expect_error(
      [&] {
        ops::check::attention_backward<ScView>(q, kv, sc_t({2, 5, 2, 4}), out, q, kv, kv, probs, opt);
      },
      "attention_backward: dv");
  auto lengths = sc_ids({3});
  opt.key_lengths = lengths;
  sc_expect_error([&] { ops::check::attention_forward<ScView>(out, probs, q, kv, kv, opt); },
                  "attention_forward: key_lengths");

  ops::AttentionOptions<backend::cpu> fused_opt;
  auto qkv = sc_t({2, 3, (4 + 2 * 2) * 8}), self_probs = sc_t({2, 4, 3, 3});
  CHECK_NOTHROW(ops::check::attention_forward_qkv<ScView>(out, self_probs, qkv, 2, fused_opt));
  sc_expect_error([&] { ops::check::attention_forward_qkv<ScView>(out, self_probs, qkv, 3, fused_opt); },
                  "attention_forward_qkv: n_kv_heads 3");
  sc_expect_error(
      [&] {
        ops::check::attention_backward_qkv<ScView>(sc_t({2, 3, 8}), out, qkv, self_probs, 2, fused_opt);
      },
      "attention_backward_qkv: dqkv");
  // The CPU op reaches the same check.
  sc_expect_error(
      [&] {
        ops::attention_forward<float>(out, probs, q, kv, sc_t({2, 4, 2, 8}));
      },
      "attention_forward: v");
}

TEST_CASE("shape checks: losses name the tensor", "[ops][shape]") {
  auto logits = sc_t({2, 3, 7}), rows = sc_t({2, 3});
  auto targets = sc_ids({2, 3});
  CHECK_NOTHROW(ops::check::softmax_cross_entropy_forward<ScView, ScIds>(rows, logits, logits, targets));
  sc_expect_error(
      [&] {
        ops::check::softmax_cross_entropy_forward<ScView, ScIds>(rows, logits, logits, sc_ids({3, 2}));
      },
      "softmax_cross_entropy_forward: targets");
  sc_expect_error(
      [&] { ops::check::softmax_cross_entropy_forward<ScView, ScIds>(sc_t({6}), ScView{}, logits, targets); },
      "softmax_cross_entropy_forward: losses");
  sc_expect_error(
      [&] {
        ops::check::softmax_cross_entropy_backward<ScView, ScIds>(sc_t({2, 3, 6}), logits, targets);
      },
      "softmax_cross_entropy_backward: dlogits");
  sc_expect_error([&] { ops::check::softmax_cross_entropy_fused<ScView, ScIds>(logits, sc_t({3}), targets); },
                  "softmax_cross_entropy_fused: losses");
  sc_expect_error(
      [&] { ops::check::logprob_gather_forward<ScView, ScIds>(rows, ScView{}, sc_t({2}), logits, targets); },
      "logprob_gather_forward: entropy");
  sc_expect_error(
      [&] { ops::check::logprob_gather_backward<ScView, ScIds>(logits, rows, logits, targets, sc_t({6})); },
      "logprob_gather_backward: lse");
  sc_expect_error([] { ops::check::clip_max_norm(0.0); }, "clip_grad_norm: max_norm");
}
