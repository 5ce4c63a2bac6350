// CUDA vs CPU conformance, attention: separate q/k/v and fused qkv, forward (out, probs) and backward
// (dq, dk, dv / dqkv), over causal and bidirectional masks, GQA and MQA, head size 8, one-token queries
// against a cache (query_offset), right padding (key_lengths, including an empty sequence) and left
// padding / holes (key_mask).

#include "conformance.hpp"

using namespace conformance;
using p4lm::Rng;
using p4lm::Shape;
namespace ops = p4lm::ops;

namespace {
constexpr Tolerance probs_tol{1e-6, 1e-4};
constexpr Tolerance value_tol{1e-5, 1e-4};

struct Case {
  std::size_t b, tq, tk, h, hkv, d;
  bool causal = true;
  double scale = 0;
  std::ptrdiff_t query_offset = -1;
  std::vector<std::int32_t> lengths = {};  // B entries or empty
  bool holes = false;                      // random key_mask with some zeros (left padding on batch 0)
};

std::string name(const Case& c) {
  return describe("B", c.b, " Tq", c.tq, " Tk", c.tk, " H", c.h, "/", c.hkv, " D", c.d,
                  c.causal ? " causal" : " full", c.scale != 0 ? describe(" scale=", c.scale) : "",
                  c.query_offset >= 0 ? describe(" off=", c.query_offset) : "",
                  c.lengths.empty() ? "" : " lengths", c.holes ? " holes" : "");
}

Host<std::uint8_t> make_mask(const Case& c, Rng& rng) {
  Host<std::uint8_t> m(Shape{c.b, c.tk}, 1);
  for (std::size_t b = 0; b < c.b; ++b)
    for (std::size_t j = 0; j < c.tk; ++j) {
      if (b == 0 && j < c.tk / 3) m.data[b * c.tk + j] = 0;  // left padding
      if (rng.uniform() < 0.2f) m.data[b * c.tk + j] = 0;    // holes
    }
  return m;
}
}  // namespace

TEST_CASE("cuda conformance: attention forward and backward (q, k, v)", "[cuda][conformance][attention]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(21);
  std::vector<Case> cases = {
      {1, 1, 1, 1, 1, 8},
      {2, 5, 5, 4, 4, 8},
      {2, 33, 33, 8, 2, 16},                              // GQA, odd length
      {3, 7, 7, 3, 1, 8},                                 // MQA
      {2, 9, 9, 2, 2, 8, false},                          // bidirectional
      {2, 1, 9, 4, 2, 8},                                 // decode: one query against a cache
      {1, 4, 12, 2, 1, 8, true, 0, 3},                    // explicit query offset
      {2, 6, 6, 2, 2, 8, true, 0.5},                      // explicit scale
      {3, 8, 8, 4, 2, 8, true, 0, -1, {8, 3, 0}},         // right padding, one empty sequence
      {2, 10, 10, 4, 4, 8, false, 0, -1, {}, true},       // holes, bidirectional
      {2, 10, 10, 4, 2, 16, true, 0, -1, {10, 7}, true},  // everything at once
      {2, 128, 128, 4, 4, 64},                            // a realistic head
      {1, 3, 5, 6, 3, 24, true, 0, 0},                    // offset 0 with Tq < Tk
  };
  for (const auto& c : cases) {
    const auto where = name(c);
    const Shape qs{c.b, c.tq, c.h, c.d}, ks{c.b, c.tk, c.hkv, c.d}, ps{c.b, c.h, c.tq, c.tk};
    auto q = normal(qs, rng), k = normal(ks, rng), v = normal(ks, rng);
    Host<std::int32_t> lengths(Shape{c.b});
    if (!c.lengths.empty()) lengths.data = c.lengths;
    auto mask = c.holes ? make_mask(c, rng) : Host<std::uint8_t>(Shape{c.b, c.tk}, 1);
    ref::AttnOptions ro{c.causal, c.scale, c.query_offset, c.lengths.empty() ? nullptr : lengths.data.data(),
                        c.holes ? mask.data.data() : nullptr};
    Host<float> out(qs), probs(ps);
    ref::attention_forward(out, probs, q, k, v, ro);

    auto d_q = up(q), d_k = up(k), d_v = up(v);
    auto d_lengths = up(lengths);
    auto d_mask = up(mask);
    ops::AttentionOptions<p4lm::backend::cuda> go;
    go.causal = c.causal;
    go.scale = c.scale;
    go.query_offset = c.query_offset;
    if (!c.lengths.empty()) go.key_lengths = d_lengths;
    if (c.holes) go.key_mask = d_mask;
    p4lm::CudaTensor<float> d_out(qs, 9.0f), d_probs(ps, 9.0f);
    ops::attention_forward(d_out, d_probs, d_q, d_k, d_v, go);
    compare("attention_forward/out", where, d_out, out, value_tol);
    compare("attention_forward/probs", where, d_probs, probs, probs_tol);

    auto dout = normal(qs, rng), dq = uniform(qs, rng), dk = uniform(ks, rng), dv = uniform(ks, rng);
    auto g_dout = up(dout), g_dq = up(dq), g_dk = up(dk), g_dv = up(dv);
    ref::attention_backward(dq, dk, dv, dout, q, k, v, probs, ro);
    ops::attention_backward(g_dq, g_dk, g_dv, g_dout, d_q, d_k, d_v, d_probs, go);
    compare("attention_backward/dq", where, g_dq, dq, value_tol);
    compare("attention_backward/dk", where, g_dk, dk, value_tol);
    compare("attention_backward/dv", where, g_dv, dv, value_tol);
  }
}

TEST_CASE("cuda conformance: fused-qkv attention forward and backward", "[cuda][conformance][attention]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(22);
  std::vector<Case> cases = {
      {1, 1, 1, 1, 1, 8},
      {2, 17, 17, 4, 4, 8},
      {2, 12, 12, 6, 2, 8, true, 0, -1, {12, 5}},
      {3, 9, 9, 4, 1, 16, false, 0, -1, {}, true},
      {4, 64, 64, 12, 12, 64},
  };
  for (const auto& c : cases) {
    const auto where = name(c);
    const std::size_t width = (c.h + 2 * c.hkv) * c.d;
    const Shape xs{c.b, c.tq, width}, os{c.b, c.tq, c.h, c.d}, ps{c.b, c.h, c.tq, c.tk};
    auto qkv = normal(xs, rng);
    Host<std::int32_t> lengths(Shape{c.b});
    if (!c.lengths.empty()) lengths.data = c.lengths;
    auto mask = c.holes ? make_mask(c, rng) : Host<std::uint8_t>(Shape{c.b, c.tk}, 1);
    ref::AttnOptions ro{c.causal, c.scale, c.query_offset, c.lengths.empty() ? nullptr : lengths.data.data(),
                        c.holes ? mask.data.data() : nullptr};
    Host<float> out(os), probs(ps);
    ref::attention_forward_qkv(out, probs, qkv, c.hkv, ro);

    auto d_qkv = up(qkv);
    auto d_lengths = up(lengths);
    auto d_mask = up(mask);
    ops::AttentionOptions<p4lm::backend::cuda> go;
    go.causal = c.causal;
    if (!c.lengths.empty()) go.key_lengths = d_lengths;
    if (c.holes) go.key_mask = d_mask;
    p4lm::CudaTensor<float> d_out(os, 9.0f), d_probs(ps, 9.0f);
    ops::attention_forward_qkv(d_out, d_probs, d_qkv, c.hkv, go);
    compare("attention_forward_qkv/out", where, d_out, out, value_tol);
    compare("attention_forward_qkv/probs", where, d_probs, probs, probs_tol);

    auto dout = normal(os, rng), dqkv = uniform(xs, rng);
    auto g_dout = up(dout), g_dqkv = up(dqkv);
    ref::attention_backward_qkv(dqkv, dout, qkv, probs, c.hkv, ro);
    ops::attention_backward_qkv(g_dqkv, g_dout, d_qkv, d_probs, c.hkv, go);
    compare("attention_backward_qkv/dqkv", where, g_dqkv, dqkv, value_tol);
  }
}

TEST_CASE("cuda attention rejects shapes like the CPU", "[cuda][attention]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  p4lm::CudaTensor<float> q(Shape{1, 2, 3, 8}), k(Shape{1, 2, 2, 8}), out(Shape{1, 2, 3, 8}),
      probs(Shape{1, 3, 2, 2});
  CHECK_THROWS_AS(ops::attention_forward(out, probs, q, k, k),
                  p4lm::ShapeError);  // 2 kv heads do not divide 3
  p4lm::CudaTensor<float> k1(Shape{1, 2, 1, 8}), bad_probs(Shape{1, 3, 2, 3});
  CHECK_THROWS_AS(ops::attention_forward(out, bad_probs, q, k1, k1), p4lm::ShapeError);
  ops::AttentionOptions<p4lm::backend::cuda> o;
  p4lm::CudaTensor<std::int32_t> lengths(Shape{2});
  o.key_lengths = lengths;
  CHECK_THROWS_WITH(ops::attention_forward(out, probs, q, k1, k1, o),
                    Catch::Contains("attention_forward: key_lengths"));
}
