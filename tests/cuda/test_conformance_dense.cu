// CUDA vs CPU conformance, dense and element-wise ops: matmul (+ backward), batched_matmul, embedding,
// gelu, swiglu, residual, dropout (bit-exact mask), layernorm, rmsnorm, rope. Gradient buffers start
// random on both sides, so the tests also check that backward accumulates.

#include "conformance.hpp"

using namespace conformance;
using p4lm::Rng;
using p4lm::Shape;
namespace ops = p4lm::ops;

namespace {
constexpr Tolerance elementwise{1e-6, 1e-5};
// GEMMs and sums over rows: cuBLAS blocks and FMAs, or chunked trees, against OpenBLAS / sequential
// sums; an indexing mistake shows as O(1) differences, far above these.
constexpr Tolerance gemm{3e-5, 1e-4};
constexpr Tolerance column_sum{5e-5, 1e-4};
constexpr Tolerance norm_tol{1e-5, 1e-4};
constexpr Tolerance exact{0, 0};
}  // namespace

TEST_CASE("cuda conformance: matmul forward and backward", "[cuda][conformance][matmul]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  struct Case {
    Shape inp;
    std::size_t oc;
    bool bias;
  };
  const Case cases[] = {{{1, 1}, 1, true},       {{1, 7}, 5, false},        {{2, 5, 33}, 17, true},
                        {{3, 1, 64}, 96, false}, {{4, 32, 128}, 384, true}, {{2, 3, 0}, 4, true},
                        {{130, 257}, 65, true}};
  Rng rng(11);
  for (const auto& c : cases) {
    const std::size_t C = c.inp.last();
    Shape out_shape = c.inp;
    out_shape[out_shape.rank() - 1] = c.oc;
    auto inp = uniform(c.inp, rng), w = uniform(Shape{c.oc, C}, rng), b = uniform(Shape{c.oc}, rng);
    Host<float> out(out_shape);
    ref::matmul_forward(out, inp, w, c.bias ? b.view() : ref::View{});
    auto d_inp = up(inp), d_w = up(w), d_b = up(b);
    p4lm::CudaTensor<float> d_out(out_shape, 7.0f);
    ops::matmul_forward(d_out, d_inp, d_w, c.bias ? d_b.view() : ops::CudaView{});
    const auto where = describe(str(c.inp), " x ", c.oc, c.bias ? " +bias" : "");
    compare("matmul_forward", where, d_out, out, gemm);

    auto dout = uniform(out_shape, rng);
    auto dinp = uniform(c.inp, rng), dw = uniform(w.shape, rng), db = uniform(b.shape, rng);
    auto g_dinp = up(dinp), g_dw = up(dw), g_db = up(db), g_dout = up(dout);
    ref::matmul_backward(dinp, dw, db, dout, inp, w);
    ops::matmul_backward(g_dinp, g_dw, g_db, g_dout, d_inp, d_w);
    compare("matmul_backward/dinp", where, g_dinp, dinp, gemm);
    compare("matmul_backward/dweight", where, g_dw, dw, gemm);
    compare("matmul_backward/dbias", where, g_db, db, column_sum);
    // Skipped gradients stay untouched.
    auto dw2 = uniform(w.shape, rng);
    auto g_dw2 = up(dw2);
    ops::matmul_backward({}, g_dw2, {}, g_dout, d_inp, d_w);
    ref::matmul_backward({}, dw2, {}, dout, inp, w);
    compare("matmul_backward/dweight", where + " only", g_dw2, dw2, gemm);
  }
}

TEST_CASE("cuda conformance: batched_matmul with every transpose and shared operands",
          "[cuda][conformance][matmul]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(12);
  struct Case {
    std::vector<std::size_t> batch;
    std::size_t m, n, k;
    bool shared_a, shared_b;
    float alpha, beta;
  };
  const Case cases[] = {{{}, 1, 1, 1, false, false, 1, 0},         {{3}, 5, 7, 9, false, false, 1, 0},
                        {{2, 3}, 8, 8, 8, false, false, 0.5f, 1},  {{4}, 17, 3, 33, true, false, 1, 0.25f},
                        {{4}, 6, 19, 5, false, true, 2, 0},        {{2}, 4, 5, 0, false, false, 1, 0.5f},
                        {{8}, 64, 64, 16, false, false, 0.125f, 0}};
  for (const auto& c : cases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        auto with = [&](std::size_t r, std::size_t cols, bool shared) {
          std::vector<std::size_t> dims = shared ? std::vector<std::size_t>{} : c.batch;
          dims.push_back(r);
          dims.push_back(cols);
          return Shape::from(dims);
        };
        const Shape as = ta ? with(c.k, c.m, c.shared_a) : with(c.m, c.k, c.shared_a);
        const Shape bs = tb ? with(c.n, c.k, c.shared_b) : with(c.k, c.n, c.shared_b);
        const Shape cs = with(c.m, c.n, false);
        auto a = uniform(as, rng), b = uniform(bs, rng), cc = uniform(cs, rng);
        auto d_a = up(a), d_b = up(b), d_c = up(cc);
        ref::batched_matmul(cc, a, b, ta, tb, c.alpha, c.beta);
        ops::batched_matmul(d_c, d_a, d_b, ta, tb, c.alpha, c.beta);
        compare(
            "batched_matmul",
            describe(str(as), ta ? "T" : "", " x ", str(bs), tb ? "T" : "", " a=", c.alpha, " b=", c.beta),
            d_c, cc, gemm);
      }
}

TEST_CASE("cuda conformance: embedding forward and backward", "[cuda][conformance][embedding]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(13);
  struct Case {
    Shape ids;
    std::size_t V, C, maxT;
    bool pos;
  };
  const Case cases[] = {
      {{1}, 5, 8, 4, true},      {{1, 1}, 1, 1, 1, false},        {{2, 5}, 11, 33, 7, true},
      {{3, 17}, 3, 8, 17, true}, {{4, 64}, 1000, 64, 128, false}, {{2, 2, 9}, 50, 16, 9, true}};
  for (const auto& c : cases) {
    const std::size_t T = c.ids.last();
    auto id = ids(c.ids, rng, static_cast<std::int32_t>(c.V));
    auto wte = uniform(Shape{c.V, c.C}, rng), wpe = uniform(Shape{c.maxT, c.C}, rng);
    Shape os = c.ids;
    std::vector<std::size_t> dims(os.begin(), os.end());
    dims.push_back(c.C);
    os = Shape::from(dims);
    Host<float> out(os);
    ref::embedding_forward(out, id, wte, c.pos ? wpe.view() : ref::View{});
    auto d_id = up(id);
    auto d_wte = up(wte), d_wpe = up(wpe);
    p4lm::CudaTensor<float> d_out(os, 3.0f);
    ops::embedding_forward(d_out, d_id, d_wte, c.pos ? d_wpe.view() : ops::CudaView{});
    const auto where = describe("ids ", str(c.ids), " V=", c.V, " C=", c.C, c.pos ? " +pos" : "", " T=", T);
    compare("embedding_forward", where, d_out, out, exact);

    auto dout = uniform(os, rng), dwte = uniform(wte.shape, rng), dwpe = uniform(wpe.shape, rng);
    auto g_dout = up(dout), g_dwte = up(dwte), g_dwpe = up(dwpe);
    ref::embedding_backward(dwte, c.pos ? dwpe.view() : ref::View{}, dout, id);
    ops::embedding_backward(g_dwte, c.pos ? g_dwpe.view() : ops::CudaView{}, g_dout, d_id);
    // dwte sums repeated ids with atomics (any order): a few roundings apart from the CPU's order.
    compare("embedding_backward/dwte", where, g_dwte, dwte, column_sum);
    compare("embedding_backward/dwpe", where, g_dwpe, dwpe, column_sum);
  }
}

TEST_CASE("cuda conformance: gelu, swiglu, residual", "[cuda][conformance][elementwise]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(14);
  const Shape shapes[] = {{1}, {7}, {3, 33}, {2, 5, 1000}, {0}, {4097}};
  for (const auto& s : shapes) {
    const auto where = str(s);
    auto x = uniform(s, rng, -6.0f, 6.0f), y = uniform(s, rng, -3.0f, 3.0f), dout = uniform(s, rng);
    auto d_x = up(x), d_y = up(y), d_dout = up(dout);
    {
      Host<float> out(s);
      ref::gelu_forward(out, x);
      p4lm::CudaTensor<float> d_out(s);
      ops::gelu_forward(d_out, d_x);
      compare("gelu_forward", where, d_out, out, elementwise);
      auto dinp = uniform(s, rng);
      auto g = up(dinp);
      ref::gelu_backward(dinp, dout, x);
      ops::gelu_backward(g, d_dout, d_x);
      compare("gelu_backward", where, g, dinp, elementwise);
      // In place: out aliases inp.
      auto inplace = up(x);
      ops::gelu_forward(inplace, inplace);
      compare("gelu_forward", where + " in place", inplace, out, elementwise);
    }
    {
      Host<float> out(s);
      ref::swiglu_forward(out, x, y);
      p4lm::CudaTensor<float> d_out(s);
      ops::swiglu_forward(d_out, d_x, d_y);
      compare("swiglu_forward", where, d_out, out, elementwise);
      auto dg = uniform(s, rng), du = uniform(s, rng);
      auto g_dg = up(dg), g_du = up(du);
      ref::swiglu_backward(dg, du, dout, x, y);
      ops::swiglu_backward(g_dg, g_du, d_dout, d_x, d_y);
      compare("swiglu_backward/dgate", where, g_dg, dg, elementwise);
      compare("swiglu_backward/dup", where, g_du, du, elementwise);
      ref::swiglu_backward({}, du, dout, x, y);
      ops::swiglu_backward({}, g_du, d_dout, d_x, d_y);
      compare("swiglu_backward/dup", where + " only", g_du, du, elementwise);
    }
    {
      Host<float> out(s);
      ref::residual_forward(out, x, y);
      p4lm::CudaTensor<float> d_out(s);
      ops::residual_forward(d_out, d_x, d_y);
      compare("residual_forward", where, d_out, out, exact);
      auto da = uniform(s, rng), db = uniform(s, rng);
      auto g_da = up(da), g_db = up(db);
      ref::residual_backward(da, db, dout);
      ops::residual_backward(g_da, g_db, d_dout);
      compare("residual_backward/da", where, g_da, da, exact);
      compare("residual_backward/db", where, g_db, db, exact);
      ref::residual_backward({}, db, dout);
      ops::residual_backward({}, g_db, d_dout);
      compare("residual_backward/db", where + " only", g_db, db, exact);
    }
  }
}

TEST_CASE("cuda conformance: dropout mask equals the CPU mask bit for bit", "[cuda][conformance][dropout]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(15);
  const Shape shapes[] = {{1}, {5}, {3, 7}, {4097}, {2, 3, 1000}};
  const double ps[] = {0.0, 0.1, 0.5, 0.9};
  for (const auto& s : shapes)
    for (double p : ps) {
      const std::uint64_t seed = rng.next_u64(), stream = rng.below(1000);
      auto x = uniform(s, rng, 0.5f, 2.0f);  // nonzero, so a zero output means a dropped element
      Host<float> out(s);
      ref::dropout_forward(out, x, p, seed, stream);
      auto d_x = up(x);
      p4lm::CudaTensor<float> d_out(s);
      ops::dropout_forward(d_out, d_x, p, seed, stream);
      const auto where = describe(str(s), " p=", p);
      compare("dropout_forward", where, d_out, out, exact);
      const auto g = down(d_out.view());
      std::size_t mask_mismatch = 0;
      for (std::size_t i = 0; i < g.size(); ++i) mask_mismatch += (g[i] == 0.0f) != (out.data[i] == 0.0f);
      CHECK(mask_mismatch == 0);
      auto dout = uniform(s, rng), dinp = uniform(s, rng);
      auto g_dinp = up(dinp), g_dout = up(dout);
      ref::dropout_backward(dinp, dout, p, seed, stream);
      ops::dropout_backward(g_dinp, g_dout, p, seed, stream);
      compare("dropout_backward", where, g_dinp, dinp, elementwise);
    }
}

TEST_CASE("cuda conformance: layernorm and rmsnorm", "[cuda][conformance][norm]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(16);
  struct Case {
    Shape x;
    float offset;  // added to x: a large mean tests the variance's stability
  };
  const Case cases[] = {{{1, 1}, 0},      {{1, 8}, 0},         {{3, 7, 33}, 0}, {{64, 768}, 0},
                        {{5, 1000}, 100}, {{2, 3, 4, 31}, -5}, {{257, 64}, 0}};
  for (const auto& c : cases) {
    const std::size_t C = c.x.last(), rows = c.x.rows();
    const auto where = describe(str(c.x), c.offset != 0 ? describe(" +", c.offset) : "");
    auto x = uniform(c.x, rng);
    for (auto& v : x.data) v += c.offset;
    auto w = uniform(Shape{C}, rng, 0.5f, 1.5f), b = uniform(Shape{C}, rng);
    auto dout = uniform(c.x, rng);
    auto d_x = up(x), d_w = up(w), d_b = up(b), d_dout = up(dout);
    {
      Host<float> out(c.x), mean(Shape{rows}), rstd(Shape{rows});
      ref::layernorm_forward(out, mean, rstd, x, w, b, 1e-5f);
      p4lm::CudaTensor<float> d_out(c.x), d_mean(Shape{rows}), d_rstd(Shape{rows});
      ops::layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b);
      compare("layernorm_forward/out", where, d_out, out, norm_tol);
      compare("layernorm_forward/mean", where, d_mean, mean, norm_tol);
      compare("layernorm_forward/rstd", where, d_rstd, rstd, norm_tol);
      auto dx = uniform(c.x, rng), dw = uniform(w.shape, rng), db = uniform(b.shape, rng);
      auto g_dx = up(dx), g_dw = up(dw), g_db = up(db);
      ref::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd);
      ops::layernorm_backward(g_dx, g_dw, g_db, d_dout, d_x, d_w, d_mean, d_rstd);
      compare("layernorm_backward/dx", where, g_dx, dx, norm_tol);
      compare("layernorm_backward/dweight", where, g_dw, dw, column_sum);
      compare("layernorm_backward/dbias", where, g_db, db, column_sum);
    }
    {
      Host<float> out(c.x), rstd(Shape{rows});
      ref::rmsnorm_forward(out, rstd, x, w, 1e-5f);
      p4lm::CudaTensor<float> d_out(c.x), d_rstd(Shape{rows});
      ops::rmsnorm_forward(d_out, d_rstd, d_x, d_w);
      compare("rmsnorm_forward/out", where, d_out, out, norm_tol);
      compare("rmsnorm_forward/rstd", where, d_rstd, rstd, norm_tol);
      auto dx = uniform(c.x, rng), dw = uniform(w.shape, rng);
      auto g_dx = up(dx), g_dw = up(dw);
      ref::rmsnorm_backward(dx, dw, dout, x, w, rstd);
      ops::rmsnorm_backward(g_dx, g_dw, d_dout, d_x, d_w, d_rstd);
      compare("rmsnorm_backward/dx", where, g_dx, dx, norm_tol);
      compare("rmsnorm_backward/dweight", where, g_dw, dw, column_sum);
    }
  }
}

TEST_CASE("cuda conformance: rope forward and backward", "[cuda][conformance][rope]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(17);
  struct Case {
    Shape x;
    bool shared;
    double theta;
  };
  const Case cases[] = {{{1, 1, 1, 2}, false, 10000.0},
                        {{2, 5, 3, 8}, false, 10000.0},
                        {{2, 17, 4, 64}, true, 10000.0},
                        {{3, 9, 2, 16}, false, 500000.0},
                        {{1, 33, 6, 32}, true, 10000.0}};
  for (const auto& c : cases) {
    const Shape ps = c.shared ? Shape{c.x[1]} : Shape{c.x[0], c.x[1]};
    auto pos = ids(ps, rng, 4096);
    auto x = uniform(c.x, rng), dout = uniform(c.x, rng), dx = uniform(c.x, rng);
    const auto where = describe(str(c.x), c.shared ? " shared pos" : "", " theta=", c.theta);
    Host<float> out(c.x);
    ref::rope_forward(out, x, pos, c.theta);
    auto d_pos = up(pos);
    auto d_x = up(x);
    p4lm::CudaTensor<float> d_out(c.x);
    ops::rope_forward(d_out, d_x, d_pos, c.theta);
    compare("rope_forward", where, d_out, out, elementwise);
    ops::rope_forward(d_x, d_x, d_pos, c.theta);  // in place
    compare("rope_forward", where + " in place", d_x, out, elementwise);
    auto g_dx = up(dx), g_dout = up(dout);
    ref::rope_backward(dx, dout, pos, c.theta);
    ops::rope_backward(g_dx, g_dout, d_pos, c.theta);
    compare("rope_backward", where, g_dx, dx, elementwise);
  }
}
