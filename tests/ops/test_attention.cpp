#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include <p4lm/ops/attention.hpp>

#include "attn_test_helpers.hpp"
#include "fixture_reader.hpp"

using namespace p4lm;
using p4lm::test::closeness;
using p4lm::test::random_normal;

namespace {

struct Case {
  std::size_t b, tq, tk, h, hkv, d;
  bool causal = true;
  std::vector<std::int32_t> lengths{};  // empty: none
  std::vector<std::uint8_t> mask{};     // empty: none
  std::ptrdiff_t query_offset = -1;
  bool force_blas_openmp = false;  // run the BLAS and OpenMP paths even on tiny shapes
  std::size_t row_block = 64;      // causal query block
};

// Holds the mask tensors so AttentionOptions can view them.
struct Options {
  CpuTensor<std::int32_t> lengths;
  CpuTensor<std::uint8_t> mask;
  ops::AttentionOptions<> opt;
  explicit Options(const Case& c) {
    opt.causal = c.causal;
    opt.query_offset = c.query_offset;
    if (c.force_blas_openmp) opt.blas_min_work = opt.parallel_min_work = 0;
    opt.causal_row_block = c.row_block;
    if (!c.lengths.empty()) {
      lengths = CpuTensor<std::int32_t>(Shape{c.b}, std::span<const std::int32_t>(c.lengths));
      opt.key_lengths = lengths;
    }
    if (!c.mask.empty()) {
      mask = CpuTensor<std::uint8_t>(Shape{c.b, c.tk}, std::span<const std::uint8_t>(c.mask));
      opt.key_mask = mask;
    }
  }
};

// Straightforward loops over the documented masking rule, in double.
void reference_forward(const Case& c, const CpuTensor<double>& q, const CpuTensor<double>& k,
                       const CpuTensor<double>& v, CpuTensor<double>& out, CpuTensor<double>& probs) {
  const double scale = 1.0 / std::sqrt(double(c.d));
  const std::ptrdiff_t offset =
      c.query_offset >= 0 ? c.query_offset : std::ptrdiff_t(c.tk) - std::ptrdiff_t(c.tq);
  out.resize(Shape{c.b, c.tq, c.h, c.d}, 0.0);
  probs.resize(Shape{c.b, c.h, c.tq, c.tk}, 0.0);
  for (std::size_t b = 0; b < c.b; ++b)
    for (std::size_t h = 0; h < c.h; ++h) {
      const std::size_t g = h / (c.h / c.hkv);
      for (std::size_t i = 0; i < c.tq; ++i) {
        std::vector<double> s(c.tk, -INFINITY);
        double mx = -INFINITY;
        for (std::size_t j = 0; j < c.tk; ++j) {
          bool ok = !c.causal || std::ptrdiff_t(j) <= std::ptrdiff_t(i) + offset;
          if (!c.lengths.empty()) ok = ok && std::int32_t(j) < c.lengths[b];
          if (!c.mask.empty()) ok = ok && c.mask[b * c.tk + j];
          if (!ok) continue;
          double dot = 0;
          for (std::size_t e = 0; e < c.d; ++e)
            dot += q.data()[((b * c.tq + i) * c.h + h) * c.d + e] *
                   k.data()[((b * c.tk + j) * c.hkv + g) * c.d + e];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (std::size_t j = 0; j < c.tk; ++j) {
          const double p = s[j] / sum;
          probs.data()[((b * c.h + h) * c.tq + i) * c.tk + j] = p;
          for (std::size_t e = 0; e < c.d; ++e)
            out.data()[((b * c.tq + i) * c.h + h) * c.d + e] +=
                p * v.data()[((b * c.tk + j) * c.hkv + g) * c.d + e];
        }
      }
    }
}

template <class T>
struct Run {
  CpuTensor<T> out, probs, dq, dk, dv;
  Run(const Case& c, const Options& o, const CpuTensor<T>& q, const CpuTensor<T>& k, const CpuTensor<T>& v,
      const CpuTensor<T>& g)
      : out(q.shape()),
        probs(Shape{c.b, c.h, c.tq, c.tk}),
        dq(q.shape(), T(0)),
        dk(k.shape(), T(0)),
        dv(v.shape(), T(0)) {
    ops::attention_forward<T>(out, probs, q, k, v, o.opt);
    ops::attention_backward<T>(dq, dk, dv, g, q, k, v, probs, o.opt);
  }
};

void check_one(const Case& c, std::uint64_t seed) {
  INFO("B " << c.b << " Tq " << c.tq << " Tk " << c.tk << " H " << c.h << " Hkv " << c.hkv << " D " << c.d
            << (c.causal ? " causal" : " bidirectional") << (c.lengths.empty() ? "" : " lengths")
            << (c.mask.empty() ? "" : " key_mask") << (c.force_blas_openmp ? " BLAS+OpenMP" : "")
            << " row block " << c.row_block);
  Rng rng(seed);
  auto q = random_normal(Shape{c.b, c.tq, c.h, c.d}, rng),
       k = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng),
       v = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng), g = random_normal(q.shape(), rng);
  const Options o(c);
  Run<double> run(c, o, q, k, v, g);
  CpuTensor<double> ref_out, ref_probs;
  reference_forward(c, q, k, v, ref_out, ref_probs);
  CHECK(closeness(run.out, ref_out, 1e-12, 1e-10) <= 1);
  CHECK(closeness(run.probs, ref_probs, 1e-12, 1e-10) <= 1);
  auto loss = [&] {
    CpuTensor<double> out(q.shape()), probs(Shape{c.b, c.h, c.tq, c.tk});
    ops::attention_forward<double>(out, probs, q, k, v, o.opt);
    return test::dot(out, g);
  };
  test::require_gradient("q", loss, q, run.dq, 1e-5);
  test::require_gradient("k", loss, k, run.dk, 1e-5);
  test::require_gradient("v", loss, v, run.dv, 1e-5);
}

// Every case on the loop path (finite differences) and on the BLAS + OpenMP path (equal to the loop
// path to rounding; finite differences through thousands of tiny OpenMP regions would be slow).
void check_case(Case c, std::uint64_t seed) {
  check_one(c, seed);
  c.row_block = 2;  // several causal blocks even at these sizes
  check_one(c, seed);
  Rng rng(seed);
  auto q = random_normal(Shape{c.b, c.tq, c.h, c.d}, rng),
       k = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng),
       v = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng), g = random_normal(q.shape(), rng);
  const Options loops(c);
  c.force_blas_openmp = true;
  const Options forced(c);
  Run<double> a(c, loops, q, k, v, g), b(c, forced, q, k, v, g);
  INFO("BLAS + OpenMP path against the loop path");
  CHECK(closeness(b.out, a.out, 1e-13, 1e-12) <= 1);
  CHECK(closeness(b.probs, a.probs, 1e-13, 1e-12) <= 1);
  CHECK(closeness(b.dq, a.dq, 1e-13, 1e-12) <= 1);
  CHECK(closeness(b.dk, a.dk, 1e-13, 1e-12) <= 1);
  CHECK(closeness(b.dv, a.dv, 1e-13, 1e-12) <= 1);
}

}  // namespace

TEST_CASE("attention matches the reference loops and finite differences", "[ops][attention]") {
  SECTION("causal, grouped-query (4 heads, 2 kv heads)") {
    check_case({2, 5, 5, 4, 2, 8}, 10);
  }
  SECTION("bidirectional") {
    check_case({2, 4, 4, 3, 3, 8, false}, 11);
  }
  SECTION("one token") {
    check_case({2, 1, 1, 2, 1, 8}, 12);
  }
  SECTION("GQA 8 heads / 2 kv heads, odd T") {
    check_case({1, 7, 7, 8, 2, 8}, 13);
  }
  SECTION("head size 4 and 16") {
    check_case({1, 3, 3, 2, 2, 4}, 14);
    check_case({1, 3, 3, 2, 1, 16}, 15);
  }
  SECTION("right padding (lengths) composed with a key-mask hole, causal") {
    Case c{3, 6, 6, 2, 1, 8};
    c.lengths = {6, 4, 1};
    c.mask = {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    check_case(c, 16);
  }
  SECTION("left padding: pad queries see no key (zero output, zero gradient)") {
    Case c{2, 5, 5, 2, 2, 8};
    c.mask = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    check_case(c, 17);
  }
  SECTION("bidirectional with padding, a sequence of length 0") {
    Case c{3, 4, 4, 2, 2, 8, false};
    c.lengths = {4, 2, 0};
    check_case(c, 18);
  }
  SECTION("decode: 2 queries over a cache of 7 keys, bottom-right aligned") {
    check_case({2, 2, 7, 4, 2, 8}, 19);
  }
  SECTION("chunk into a larger cache: explicit query_offset and fill lengths") {
    Case c{2, 2, 8, 2, 1, 8};
    c.query_offset = 3;  // queries at positions 3 and 4
    c.lengths = {5, 5};
    check_case(c, 20);
  }
}

// At T >= 32 the products go to BLAS by default; finite differences of such losses are too noisy for
// 1e-6, so these compare the BLAS path against the loop path (checked above) and the reference.
TEST_CASE("attention's default BLAS path equals its loop path at larger shapes", "[ops][attention]") {
  for (Case c : {Case{2, 32, 32, 2, 1, 32, true, {32, 29}}, Case{1, 40, 40, 2, 2, 32, false},
                 Case{1, 150, 150, 2, 1, 16, true, {150}}}) {
    INFO("T " << c.tq << (c.causal ? " causal" : " bidirectional"));
    Rng rng(21);
    auto q = random_normal(Shape{c.b, c.tq, c.h, c.d}, rng),
         k = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng),
         v = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng), g = random_normal(q.shape(), rng);
    Options blas(c), loops(c);
    loops.opt.blas_min_work = std::size_t(1) << 62;
    Run<double> a(c, blas, q, k, v, g), b(c, loops, q, k, v, g);
    CpuTensor<double> ref_out, ref_probs;
    reference_forward(c, q, k, v, ref_out, ref_probs);
    CHECK(closeness(a.out, ref_out, 1e-12, 1e-10) <= 1);
    CHECK(closeness(a.probs, ref_probs, 1e-12, 1e-10) <= 1);
    CHECK(closeness(a.dq, b.dq, 1e-12, 1e-10) <= 1);
    CHECK(closeness(a.dk, b.dk, 1e-12, 1e-10) <= 1);
    CHECK(closeness(a.dv, b.dv, 1e-12, 1e-10) <= 1);
  }
}

TEST_CASE("attention: fully masked rows are zeros, not NaN", "[ops][attention]") {
  Case c{2, 4, 4, 2, 1, 8, true};
  c.mask = {0, 0, 0, 0, 0, 1, 1, 1};
  Rng rng(30);
  auto q = random_normal<float>(Shape{2, 4, 2, 8}, rng), k = random_normal<float>(Shape{2, 4, 1, 8}, rng),
       v = random_normal<float>(Shape{2, 4, 1, 8}, rng), g = random_normal<float>(q.shape(), rng);
  const Options o(c);
  Run<float> run(c, o, q, k, v, g);
  for (const auto* t : {&run.out, &run.probs, &run.dq, &run.dk, &run.dv})
    for (std::size_t i = 0; i < t->numel(); ++i) REQUIRE(std::isfinite(t->data()[i]));
  for (std::size_t i = 0; i < 4 * 2 * 8; ++i) CHECK(run.out.data()[i] == 0.0f);  // batch 0: every key masked
  for (std::size_t i = 0; i < 4 * 8; ++i) CHECK(run.dk.data()[i] == 0.0f);
}

TEST_CASE("attention float agrees with double", "[ops][attention]") {
  for (const Case& c :
       {Case{2, 65, 65, 8, 2, 8}, Case{1, 128, 128, 4, 4, 64}, Case{3, 33, 33, 2, 1, 16, false}}) {
    INFO("T " << c.tq << " H " << c.h << " D " << c.d);
    Rng rng(40);
    auto q = random_normal(Shape{c.b, c.tq, c.h, c.d}, rng),
         k = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng),
         v = random_normal(Shape{c.b, c.tk, c.hkv, c.d}, rng), g = random_normal(q.shape(), rng);
    const Options o(c);
    Run<double> d(c, o, q, k, v, g);
    Run<float> f(c, o, test::cast<float>(q), test::cast<float>(k), test::cast<float>(v),
                 test::cast<float>(g));
    CHECK(closeness(f.out, d.out, 1e-5, 1e-4) <= 1);
    CHECK(closeness(f.probs, d.probs, 1e-6, 1e-4) <= 1);
    CHECK(closeness(f.dq, d.dq, 1e-4, 1e-3) <= 1);
    CHECK(closeness(f.dk, d.dk, 1e-4, 1e-3) <= 1);
    CHECK(closeness(f.dv, d.dv, 1e-4, 1e-3) <= 1);
  }
}

TEST_CASE("attention on a fused qkv equals attention on separate q, k, v", "[ops][attention]") {
  const std::size_t B = 2, T = 9, H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D;
  Rng rng(50);
  auto qkv = random_normal(Shape{B, T, W}, rng), g = random_normal(Shape{B, T, H, D}, rng);
  CpuTensor<double> q(Shape{B, T, H, D}), k(Shape{B, T, Hkv, D}), v(Shape{B, T, Hkv, D});
  for (std::size_t bt = 0; bt < B * T; ++bt)
    for (std::size_t e = 0; e < W; ++e) {
      const double x = qkv.data()[bt * W + e];
      if (e < H * D)
        q.data()[bt * H * D + e] = x;
      else if (e < (H + Hkv) * D)
        k.data()[bt * Hkv * D + e - H * D] = x;
      else
        v.data()[bt * Hkv * D + e - (H + Hkv) * D] = x;
    }
  const Options o(Case{B, T, T, H, Hkv, D});
  Run<double> sep(Case{B, T, T, H, Hkv, D}, o, q, k, v, g);
  CpuTensor<double> out(Shape{B, T, H, D}), probs(Shape{B, H, T, T}), dqkv(qkv.shape(), 0.0);
  ops::attention_forward_qkv<double>(out, probs, qkv, Hkv, o.opt);
  ops::attention_backward_qkv<double>(dqkv, g, qkv, probs, Hkv, o.opt);
  CHECK(closeness(out, sep.out, 1e-14, 1e-12) <= 1);
  CHECK(closeness(probs, sep.probs, 1e-14, 1e-12) <= 1);
  for (std::size_t bt = 0; bt < B * T; ++bt)
    for (std::size_t e = 0; e < W; ++e) {
      const double got = dqkv.data()[bt * W + e];
      const double want = e < H * D           ? sep.dq.data()[bt * H * D + e]
                          : e < (H + Hkv) * D ? sep.dk.data()[bt * Hkv * D + e - H * D]
                                              : sep.dv.data()[bt * Hkv * D + e - (H + Hkv) * D];
      REQUIRE(got == Approx(want).margin(1e-13));
    }
}

TEST_CASE("attention matches PyTorch (masked softmax attention, float64 autograd)",
          "[ops][attention][fixture]") {
  for (const char* name :
       {"attention_causal", "attention_bidirectional", "attention_gqa", "attention_padding",
        "attention_left_padding", "attention_bidirectional_padding", "attention_decode"}) {
    INFO(name);
    const auto fx = test::Fixture::ops(name);
    auto q = fx.tensor("q"), k = fx.tensor("k"), v = fx.tensor("v"), g = fx.tensor("G");
    ops::AttentionOptions<> opt;
    opt.causal = fx.scalar("causal") != 0;
    opt.scale = fx.scalar("scale");
    CpuTensor<std::int32_t> lengths;
    CpuTensor<std::uint8_t> mask;
    if (fx.has("key_lengths")) opt.key_lengths = lengths = fx.tensor<std::int32_t>("key_lengths");
    if (fx.has("key_mask")) opt.key_mask = mask = fx.tensor<std::uint8_t>("key_mask");
    if (fx.has("query_offset")) opt.query_offset = static_cast<std::ptrdiff_t>(fx.scalar("query_offset"));
    CHECK(fx.scalar("n_kv_heads") == double(k.dim(2)));
    const Shape ps{q.dim(0), q.dim(2), q.dim(1), k.dim(1)};
    CpuTensor<double> out(q.shape()), probs(ps), dq(q.shape(), 0.0), dk(k.shape(), 0.0), dv(v.shape(), 0.0);
    ops::attention_forward<double>(out, probs, q, k, v, opt);
    ops::attention_backward<double>(dq, dk, dv, g, q, k, v, probs, opt);
    CHECK(closeness(out, fx.tensor("out"), 1e-12, 1e-10) <= 1);
    CHECK(closeness(probs, fx.tensor("probs"), 1e-12, 1e-10) <= 1);
    CHECK(closeness(dq, fx.tensor("dq"), 1e-12, 1e-10) <= 1);
    CHECK(closeness(dk, fx.tensor("dk"), 1e-12, 1e-10) <= 1);
    CHECK(closeness(dv, fx.tensor("dv"), 1e-12, 1e-10) <= 1);
    // float: same answers to float precision
    CpuTensor<float> outf(q.shape()), probsf(ps), dqf(q.shape(), 0.0f), dkf(k.shape(), 0.0f),
        dvf(v.shape(), 0.0f);
    const auto qf = test::cast<float>(q), kf = test::cast<float>(k), vf = test::cast<float>(v);
    ops::attention_forward<float>(outf, probsf, qf, kf, vf, opt);
    ops::attention_backward<float>(dqf, dkf, dvf, test::cast<float>(g), qf, kf, vf, probsf, opt);
    CHECK(closeness(outf, fx.tensor("out"), 1e-5, 1e-4) <= 1);
    CHECK(closeness(dqf, fx.tensor("dq"), 1e-5, 1e-4) <= 1);
    CHECK(closeness(dkf, fx.tensor("dk"), 1e-5, 1e-4) <= 1);
    CHECK(closeness(dvf, fx.tensor("dv"), 1e-5, 1e-4) <= 1);
  }
}

TEST_CASE("attention shape errors name the op, the argument and both shapes", "[ops][attention]") {
  CpuTensor<float> q(Shape{1, 3, 4, 8}), k(Shape{1, 3, 3, 8}), v(Shape{1, 3, 3, 8}), out(Shape{1, 3, 4, 8}),
      probs(Shape{1, 4, 3, 3});
  CHECK_THROWS_WITH(ops::attention_forward<float>(out, probs, q, k, v),
                    Catch::Contains("attention_forward: k") && Catch::Contains("(1, 3, 3, 8)"));
  CpuTensor<float> k2(Shape{1, 3, 2, 8}), v2(Shape{1, 3, 2, 8}), bad_probs(Shape{1, 4, 3, 2});
  CHECK_THROWS_WITH(ops::attention_forward<float>(out, bad_probs, q, k2, v2),
                    Catch::Contains("attention_forward: probs") && Catch::Contains("(1, 4, 3, 3)") &&
                        Catch::Contains("(1, 4, 3, 2)"));
  ops::AttentionOptions<> opt;
  CpuTensor<std::int32_t> lengths(Shape{2});
  opt.key_lengths = lengths;
  CHECK_THROWS_WITH(ops::attention_forward<float>(out, probs, q, k2, v2, opt),
                    Catch::Contains("attention_forward: key_lengths"));
}
