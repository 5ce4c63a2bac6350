#include <catch2/catch.hpp>

#include <p4lm/ops/matmul.hpp>

#include "ops_test_helpers.hpp"

using namespace p4lm;
using namespace p4lm::ops_test;

namespace {
// out[r, o] = Σ_c inp[r, c] w[o, c] + bias[o], the plain triple loop.
CpuTensor<double> linear_reference(const CpuTensor<double>& inp, const CpuTensor<double>& w,
                                   const double* bias) {
  const std::size_t C = inp.shape().last(), OC = w.dim(0), N = inp.shape().rows();
  Shape s = inp.shape();
  s[s.rank() - 1] = OC;
  CpuTensor<double> out(s);
  for (std::size_t r = 0; r < N; ++r)
    for (std::size_t o = 0; o < OC; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (std::size_t c = 0; c < C; ++c) acc += inp.data()[r * C + c] * w.data()[o * C + c];
      out.data()[r * OC + o] = acc;
    }
  return out;
}
}  // namespace

TEST_CASE("matmul_forward is inp · weightᵀ + bias for any leading shape", "[ops][matmul]") {
  for (const Shape& s : {Shape{1, 1}, Shape{5, 3}, Shape{2, 3, 7}, Shape{1, 1, 17}}) {
    const std::size_t C = s.last(), OC = 5;
    const auto inp = uniform(s, 1), w = uniform(Shape{OC, C}, 2), b = uniform(Shape{OC}, 3);
    Shape os = s;
    os[os.rank() - 1] = OC;
    CpuTensor<double> out(os, 7.0), out_nb(os, 7.0);
    ops::matmul_forward(out, inp, w, b);
    ops::matmul_forward(out_nb, inp, w);
    INFO("shape " << s);
    CHECK(closeness(out, linear_reference(inp, w, b.data()), 1e-14, 1e-12) <= 1);
    CHECK(closeness(out_nb, linear_reference(inp, w, nullptr), 1e-14, 1e-12) <= 1);
  }
}

TEST_CASE("matmul_backward matches finite differences for inp, weight and bias", "[ops][matmul][grad]") {
  const Shape is{2, 3, 7};
  const std::size_t OC = 5;
  auto inp = uniform(is, 11), w = uniform(Shape{OC, 7}, 12), b = uniform(Shape{OC}, 13);
  const auto g = weights(Shape{2, 3, OC}, 14);
  CpuTensor<double> out(g.shape());
  auto loss = [&] {
    ops::matmul_forward(out, inp, w, b);
    return dot(out, g);
  };
  CpuTensor<double> dinp(is), dw(w.shape()), db(b.shape());
  P4LM_CHECK_GRADIENT(check_input(loss, inp, dinp, [&] { ops::matmul_backward(dinp, {}, {}, g, inp, w); }));
  P4LM_CHECK_GRADIENT(check_input(loss, w, dw, [&] { ops::matmul_backward({}, dw, {}, g, inp, w); }));
  P4LM_CHECK_GRADIENT(check_input(loss, b, db, [&] { ops::matmul_backward({}, {}, db, g, inp, w); }));

  SECTION("all three gradients in one call equal the separate ones") {
    CpuTensor<double> a(is), bw(w.shape()), bb(b.shape()), a1(is), bw1(w.shape()), bb1(b.shape());
    ops::matmul_backward(a, bw, bb, g, inp, w);
    ops::matmul_backward(a1, {}, {}, g, inp, w);
    ops::matmul_backward({}, bw1, {}, g, inp, w);
    ops::matmul_backward({}, {}, bb1, g, inp, w);
    CHECK(closeness(a, a1, 0, 0) <= 1);
    CHECK(closeness(bw, bw1, 0, 0) <= 1);
    CHECK(closeness(bb, bb1, 0, 0) <= 1);
  }
}

TEST_CASE("matmul in float agrees with double, at a size where OpenBLAS and OpenMP thread", "[ops][matmul]") {
  const std::size_t N = 300, C = 96, OC = 130;
  const auto inp = uniform(Shape{N, C}, 21), w = uniform(Shape{OC, C}, 22), b = uniform(Shape{OC}, 23);
  const auto g = uniform(Shape{N, OC}, 24);
  CpuTensor<double> out(Shape{N, OC}), dinp(Shape{N, C}), dw(w.shape()), db(b.shape());
  ops::matmul_forward(out, inp, w, b);
  ops::matmul_backward(dinp, dw, db, g, inp, w);
  const auto inpf = cast<float>(inp), wf = cast<float>(w), bf = cast<float>(b), gf = cast<float>(g);
  CpuTensor<float> outf(Shape{N, OC}), dinpf(Shape{N, C}), dwf(w.shape()), dbf(b.shape());
  ops::matmul_forward(outf, inpf, wf, bf);
  ops::matmul_backward(dinpf, dwf, dbf, gf, inpf, wf);
  CHECK(closeness(outf, out, 1e-4, 1e-4) <= 1);
  CHECK(closeness(dinpf, dinp, 1e-4, 1e-4) <= 1);
  CHECK(closeness(dwf, dw, 1e-3, 1e-4) <= 1);
  CHECK(closeness(dbf, db, 1e-3, 1e-4) <= 1);
  CHECK(closeness(out, linear_reference(inp, w, b.data()), 1e-12, 1e-12) <= 1);
}

TEST_CASE("matmul shape errors name the op, the argument and both shapes", "[ops][matmul]") {
  CpuTensor<float> inp(Shape{4, 3}), w(Shape{5, 3}), out(Shape{4, 5}), bad_w(Shape{5, 4}), bad_b(Shape{4});
  CHECK_THROWS_AS(ops::matmul_forward(out, inp, bad_w), ShapeError);
  CHECK_THROWS_WITH(ops::matmul_forward(out, inp, bad_w), Catch::Contains("matmul_forward: weight") &&
                                                              Catch::Contains("(5, 3)") &&
                                                              Catch::Contains("(5, 4)"));
  CHECK_THROWS_WITH(ops::matmul_forward(out, inp, w, bad_b), Catch::Contains("matmul_forward: bias"));
  CpuTensor<float> bad_out(Shape{4, 6});
  CHECK_THROWS_WITH(ops::matmul_forward(bad_out, inp, w), Catch::Contains("matmul_forward: weight"));
  CpuTensor<float> bad_dinp(Shape{3, 3});
  CHECK_THROWS_WITH(ops::matmul_backward(bad_dinp, {}, {}, out, inp, w),
                    Catch::Contains("matmul_backward: dinp") && Catch::Contains("(3, 3)"));
}

namespace {
// c[b] = alpha op(a[b]) op(b[b]) + beta c[b] by loops; a or b of rank 2 is shared.
CpuTensor<double> bmm_reference(const CpuTensor<double>& c0, const CpuTensor<double>& a,
                                const CpuTensor<double>& b, bool ta, bool tb, double alpha, double beta) {
  CpuTensor<double> c(c0);
  const std::size_t M = c.dim(c.rank() - 2), N = c.dim(c.rank() - 1);
  const std::size_t K = ta ? a.dim(a.rank() - 2) : a.dim(a.rank() - 1);
  const std::size_t batch = c.numel() / (M * N);
  for (std::size_t i = 0; i < batch; ++i) {
    const double* A = a.data() + (a.rank() == 2 ? 0 : i * M * K);
    const double* B = b.data() + (b.rank() == 2 ? 0 : i * K * N);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t n = 0; n < N; ++n) {
        double s = 0;
        for (std::size_t k = 0; k < K; ++k)
          s += (ta ? A[k * M + m] : A[m * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
        double& out = c.data()[i * M * N + m * N + n];
        out = alpha * s + beta * out;
      }
  }
  return c;
}
}  // namespace

TEST_CASE("batched_matmul covers every transpose pair, alpha/beta, shared operands and both threading paths",
          "[ops][matmul]") {
  struct Case {
    std::size_t batch, M, N, K;
  };
  // The last case is above OpenBLAS's single-thread threshold (M·N·K > 4·65536).
  for (const Case cs : {Case{1, 1, 1, 1}, Case{3, 5, 4, 7}, Case{6, 2, 9, 3}, Case{2, 80, 72, 48}}) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      const Shape as = ta ? Shape{cs.batch, cs.K, cs.M} : Shape{cs.batch, cs.M, cs.K};
      const Shape bs = tb ? Shape{cs.batch, cs.N, cs.K} : Shape{cs.batch, cs.K, cs.N};
      const auto a = uniform(as, 31), b = uniform(bs, 32);
      auto c = uniform(Shape{cs.batch, cs.M, cs.N}, 33);
      const auto expected = bmm_reference(c, a, b, ta, tb, 0.75, 0.5);
      ops::batched_matmul(c, a, b, ta, tb, 0.75, 0.5);
      INFO("batch " << cs.batch << " M " << cs.M << " N " << cs.N << " K " << cs.K << " ta " << ta << " tb "
                    << tb);
      CHECK(closeness(c, expected, 1e-13, 1e-12) <= 1);
    }
  }
  SECTION("a rank-2 operand is shared by every batch entry") {
    const auto a = uniform(Shape{4, 3, 5}, 41), w = uniform(Shape{6, 5}, 42);
    CpuTensor<double> c(Shape{4, 3, 6}, 3.0);
    const auto expected = bmm_reference(c, a, w, false, true, 1.0, 0.0);
    ops::batched_matmul(c, a, w, false, true);
    CHECK(closeness(c, expected, 1e-13, 1e-12) <= 1);
  }
  SECTION("float agrees with double") {
    const auto a = uniform(Shape{3, 17, 33}, 51), b = uniform(Shape{3, 19, 33}, 52);
    CpuTensor<double> c(Shape{3, 17, 19});
    CpuTensor<float> cf(Shape{3, 17, 19});
    ops::batched_matmul(c, a, b, false, true);
    ops::batched_matmul(cf, cast<float>(a), cast<float>(b), false, true);
    CHECK(closeness(cf, c, 1e-5, 1e-5) <= 1);
  }
  SECTION("mismatched shapes are rejected") {
    CpuTensor<float> a(Shape{2, 3, 4}), b(Shape{2, 5, 6}), c(Shape{2, 3, 6});
    CHECK_THROWS_WITH(ops::batched_matmul(c, a, b), Catch::Contains("batched_matmul: b") &&
                                                        Catch::Contains("(2, 4, 6)") &&
                                                        Catch::Contains("(2, 5, 6)"));
    CpuTensor<float> b3(Shape{3, 4, 6});
    CHECK_THROWS_AS(ops::batched_matmul(c, a, b3), ShapeError);
  }
}

TEST_CASE("batched_matmul's gradient is batched_matmul with other transposes (as attention uses it)",
          "[ops][matmul][grad]") {
  // c = alpha a · bᵀ  =>  da += alpha dc · b,  db += alpha dcᵀ · a
  auto a = uniform(Shape{2, 3, 4}, 1), b = uniform(Shape{2, 5, 4}, 2);
  const auto g = weights(Shape{2, 3, 5}, 3);
  const double alpha = 0.6;
  CpuTensor<double> c(g.shape());
  auto loss = [&] {
    ops::batched_matmul(c, a, b, false, true, alpha);
    return dot(c, g);
  };
  CpuTensor<double> da(a.shape()), db(b.shape());
  P4LM_CHECK_GRADIENT(
      check_input(loss, a, da, [&] { ops::batched_matmul(da, g, b, false, false, alpha, 1.0); }));
  P4LM_CHECK_GRADIENT(
      check_input(loss, b, db, [&] { ops::batched_matmul(db, g, a, true, false, alpha, 1.0); }));
}
