// CUDA vs CPU conformance, losses and optimiser: softmax_cross_entropy (forward with/without probs and
// in place, backward, fused), logprob_gather (with/without lse and entropy), adamw_update,
// global_grad_norm / clip_grad_norm (norm on the device, scaling on the device), mse, bce_with_logits,
// bradley_terry. Also: tensors, copies and contexts, and device-side argument errors.

#include "conformance.hpp"

using namespace conformance;
using p4lm::Rng;
using p4lm::Shape;
namespace ops = p4lm::ops;

namespace {
constexpr Tolerance row_tol{1e-6, 1e-5};
constexpr Tolerance loss_tol{1e-6, 1e-5};
constexpr Tolerance exact{0, 0};

Host<std::int32_t> targets_with_ignored(Shape s, Rng& rng, std::int32_t V, double ignored_fraction) {
  auto t = ids(s, rng, V);
  for (auto& x : t.data)
    if (rng.uniform() < ignored_fraction) x = -100;
  return t;
}
}  // namespace

TEST_CASE("cuda conformance: softmax cross-entropy", "[cuda][conformance][loss]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(31);
  struct Case {
    Shape logits;
    double ignored;
  };
  const Case cases[] = {{{1, 1}, 0},         {{1, 7}, 0},          {{2, 5, 33}, 0.3}, {{3, 257}, 1.0},
                        {{4, 8, 1000}, 0.2}, {{2, 3, 50257}, 0.1}, {{130, 64}, 0}};
  for (const auto& c : cases) {
    const std::size_t V = c.logits.last();
    std::vector<std::size_t> tdims(c.logits.begin(), c.logits.end() - 1);
    const Shape ts = Shape::from(tdims);
    const auto where = describe(str(c.logits), " ignored~", c.ignored);
    auto logits = normal(c.logits, rng, 3.0f);
    auto targets = targets_with_ignored(ts, rng, static_cast<std::int32_t>(V), c.ignored);
    auto d_logits = up(logits);
    auto d_targets = up(targets);

    Host<float> losses(ts), probs(c.logits);
    const float mean = ref::softmax_cross_entropy_forward(losses, probs, logits, targets, -100);
    p4lm::CudaTensor<float> d_losses(ts, 5.0f), d_probs(c.logits);
    const float d_mean = ops::softmax_cross_entropy_forward(d_losses, d_probs, d_logits, d_targets);
    compare("softmax_cross_entropy_forward/losses", where, d_losses, losses, row_tol);
    compare("softmax_cross_entropy_forward/probs", where, d_probs, probs, row_tol);
    compare_scalar("softmax_cross_entropy_forward/mean", where, d_mean, mean, loss_tol);
    // Without probs, and in place over the logits.
    p4lm::CudaTensor<float> d_losses2(ts);
    const float d_mean2 = ops::softmax_cross_entropy_forward(d_losses2, {}, d_logits, d_targets);
    compare_scalar("softmax_cross_entropy_forward/mean", where + " no probs", d_mean2, mean, loss_tol);
    auto d_inplace = up(logits);
    (void)ops::softmax_cross_entropy_forward(d_losses2, d_inplace, d_inplace, d_targets).get();
    compare("softmax_cross_entropy_forward/probs", where + " in place", d_inplace, probs, row_tol);

    auto dlogits = uniform(c.logits, rng);
    auto g_dlogits = up(dlogits);
    ref::softmax_cross_entropy_backward(dlogits, probs, targets, 0.7f, -100);
    ops::softmax_cross_entropy_backward(g_dlogits, d_probs, d_targets, 0.7f);
    compare("softmax_cross_entropy_backward", where, g_dlogits, dlogits, row_tol);

    auto fused = logits;
    Host<float> f_losses(ts);
    const float f_mean = ref::softmax_cross_entropy_fused(fused, f_losses, targets, 1.5f, -100);
    auto d_fused = up(logits);
    p4lm::CudaTensor<float> d_f_losses(ts);
    const float d_f_mean = ops::softmax_cross_entropy_fused(d_fused, d_f_losses, d_targets, 1.5f);
    compare("softmax_cross_entropy_fused/dlogits", where, d_fused, fused, row_tol);
    compare("softmax_cross_entropy_fused/losses", where, d_f_losses, f_losses, row_tol);
    compare_scalar("softmax_cross_entropy_fused/mean", where, d_f_mean, f_mean, loss_tol);
  }
}

TEST_CASE("cuda conformance: a custom ignore index", "[cuda][conformance][loss]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(32);
  const Shape ls{6, 11}, ts{6};
  auto logits = normal(ls, rng);
  Host<std::int32_t> targets(ts);
  targets.data = {0, 7, 10, 7, 3, 7};
  Host<float> losses(ts);
  const float mean = ref::softmax_cross_entropy_forward(losses, {}, logits, targets, 7);
  auto d_logits = up(logits);
  auto d_targets = up(targets);
  p4lm::CudaTensor<float> d_losses(ts);
  const float d_mean = ops::softmax_cross_entropy_forward(d_losses, {}, d_logits, d_targets, 7);
  compare("softmax_cross_entropy_forward/losses", "ignore_index=7", d_losses, losses, row_tol);
  compare_scalar("softmax_cross_entropy_forward/mean", "ignore_index=7", d_mean, mean, loss_tol);
}

TEST_CASE("cuda conformance: logprob_gather", "[cuda][conformance][loss]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(33);
  const Shape shapes[] = {{1, 1}, {1, 9}, {2, 5, 33}, {3, 4, 1000}, {2, 50257}};
  for (const auto& s : shapes) {
    const std::size_t V = s.last();
    std::vector<std::size_t> tdims(s.begin(), s.end() - 1);
    const Shape ts = Shape::from(tdims);
    const auto where = str(s);
    auto logits = normal(s, rng, 2.0f);
    auto id = targets_with_ignored(ts, rng, static_cast<std::int32_t>(V), 0.25);
    auto d_logits = up(logits);
    auto d_id = up(id);
    Host<float> lp(ts), lse(ts), ent(ts);
    ref::logprob_gather_forward(lp, lse, ent, logits, id, -100);
    p4lm::CudaTensor<float> d_lp(ts, 4.0f), d_lse(ts), d_ent(ts);
    ops::logprob_gather_forward(d_lp, d_lse, d_ent, d_logits, d_id);
    compare("logprob_gather_forward/logprobs", where, d_lp, lp, row_tol);
    compare("logprob_gather_forward/lse", where, d_lse, lse, row_tol);
    compare("logprob_gather_forward/entropy", where, d_ent, ent, Tolerance{1e-5, 1e-4});
    p4lm::CudaTensor<float> d_lp2(ts);
    ops::logprob_gather_forward(d_lp2, {}, {}, d_logits, d_id);
    compare("logprob_gather_forward/logprobs", where + " alone", d_lp2, lp, row_tol);

    auto dlp = normal(ts, rng), dl1 = uniform(s, rng);
    auto dl2 = dl1;
    auto g_dlp = up(dlp), g_dl1 = up(dl1), g_dl2 = up(dl2);
    ref::logprob_gather_backward(dl1, dlp, logits, id, lse, -100);
    ref::logprob_gather_backward(dl2, dlp, logits, id, {}, -100);
    ops::logprob_gather_backward(g_dl1, g_dlp, d_logits, d_id, d_lse);
    ops::logprob_gather_backward(g_dl2, g_dlp, d_logits, d_id);
    compare("logprob_gather_backward", where + " with lse", g_dl1, dl1, row_tol);
    compare("logprob_gather_backward", where + " recomputed lse", g_dl2, dl2, row_tol);
  }
}

TEST_CASE("cuda conformance: adamw_update", "[cuda][conformance][optim]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(34);
  struct Config {  // the fields of ops::AdamWConfig (defined in the CPU header)
    double lr, beta1, beta2, eps, weight_decay;
  };
  const Config configs[] = {
      {1e-3, 0.9, 0.999, 1e-8, 0.01}, {3e-4, 0.9, 0.95, 1e-6, 0.0}, {1e-2, 0.8, 0.99, 1e-8, 0.1}};
  const Shape shapes[] = {{1}, {7}, {33, 65}, {4097}};
  for (const auto& cfg : configs)
    for (const auto& s : shapes)
      for (std::int64_t step : {std::int64_t{1}, std::int64_t{2}, std::int64_t{1000}}) {
        auto p = normal(s, rng), g = normal(s, rng, 0.1f), m = normal(s, rng, 0.01f),
             v = uniform(s, rng, 0.0f, 1e-3f);
        auto d_p = up(p), d_g = up(g), d_m = up(m), d_v = up(v);
        ref::adamw_update(p, g, m, v, step, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
        ops::adamw_update(d_p, d_g, d_m, d_v, step, cfg);
        const auto where = describe(str(s), " step ", step, " lr ", cfg.lr, " wd ", cfg.weight_decay);
        compare("adamw_update/params", where, d_p, p, Tolerance{1e-7, 1e-6});
        compare("adamw_update/m", where, d_m, m, Tolerance{1e-9, 1e-6});
        compare("adamw_update/v", where, d_v, v, Tolerance{1e-12, 1e-6});
      }
  p4lm::CudaTensor<float> t(Shape{2});
  CHECK_THROWS_AS(ops::adamw_update(t, t, t, t, 0, configs[0]), p4lm::InvalidArgument);
}

TEST_CASE("cuda conformance: global_grad_norm and clip_grad_norm", "[cuda][conformance][optim]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(35);
  const std::vector<Shape> shapes = {{7}, {0}, {33, 65}, {1}, {100000}};
  for (double max_norm : {1e9, 1.0, 0.01}) {
    std::vector<Host<float>> host;
    std::vector<p4lm::CudaTensor<float>> dev;
    for (const auto& s : shapes) {
      host.push_back(normal(s, rng, 0.1f));
      dev.push_back(up(host.back()));
    }
    std::vector<ref::View> hv;
    std::vector<ops::CudaView> dv;
    for (auto& h : host) hv.push_back(h.view());
    for (auto& d : dev) dv.push_back(d);
    const auto where = describe("max_norm ", max_norm);
    const double n0 = ref::global_grad_norm(hv);
    const double d_n0 = ops::global_grad_norm(dv);
    compare_scalar("global_grad_norm", where, d_n0, n0, Tolerance{0, 1e-6});
    const double n = ref::clip_grad_norm(hv, max_norm);
    const auto d_n = ops::clip_grad_norm(dv, max_norm);  // stays on the device until read
    for (std::size_t i = 0; i < host.size(); ++i)
      compare("clip_grad_norm/grads", describe(where, " tensor ", i), dev[i], host[i], Tolerance{1e-9, 1e-6});
    compare_scalar("clip_grad_norm/norm", where, d_n.get(), n, Tolerance{0, 1e-6});
  }
  // A non-finite norm scales nothing.
  Host<float> h(Shape{5}, 1.0f);
  h.data[2] = INFINITY;
  auto d = up(h);
  std::vector<ops::CudaView> one{d};
  const double n = ops::clip_grad_norm(one, 1.0);
  CHECK(std::isinf(n));
  compare("clip_grad_norm/grads", "inf norm", d, h, exact);
  CHECK(static_cast<double>(ops::global_grad_norm(std::vector<ops::CudaView>{})) == 0.0);
  CHECK_THROWS_AS(ops::clip_grad_norm(one, 0.0), p4lm::InvalidArgument);
}

TEST_CASE("cuda conformance: mse, bce_with_logits, bradley_terry", "[cuda][conformance][loss]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(36);
  const Shape shapes[] = {{1}, {7}, {3, 33}, {100000}, {0}};
  for (const auto& s : shapes) {
    const auto where = str(s);
    auto a = normal(s, rng, 4.0f), b = normal(s, rng, 4.0f), y = uniform(s, rng, 0.0f, 1.0f);
    auto d_a = up(a), d_b = up(b), d_y = up(y);
    compare_scalar("mse_forward", where, ops::mse_forward(d_a, d_b), ref::mse_forward(a, b), loss_tol);
    compare_scalar("bce_with_logits_forward", where, ops::bce_with_logits_forward(d_a, d_y),
                   ref::bce_with_logits_forward(a, y), loss_tol);
    compare_scalar("bradley_terry_forward", where, ops::bradley_terry_forward(d_a, d_b),
                   ref::bradley_terry_forward(a, b), loss_tol);
    auto g1 = uniform(s, rng), g2 = uniform(s, rng), g3 = uniform(s, rng), g4 = uniform(s, rng);
    auto d1 = up(g1), d2 = up(g2), d3 = up(g3), d4 = up(g4);
    ref::mse_backward(g1, a, b, 0.5f);
    ops::mse_backward(d1, d_a, d_b, 0.5f);
    compare("mse_backward", where, d1, g1, row_tol);
    ref::bce_with_logits_backward(g2, a, y, 2.0f);
    ops::bce_with_logits_backward(d2, d_a, d_y, 2.0f);
    compare("bce_with_logits_backward", where, d2, g2, row_tol);
    ref::bradley_terry_backward(g3, g4, a, b, 1.0f);
    ops::bradley_terry_backward(d3, d4, d_a, d_b, 1.0f);
    compare("bradley_terry_backward/dchosen", where, d3, g3, row_tol);
    compare("bradley_terry_backward/drejected", where, d4, g4, row_tol);
    ref::bradley_terry_backward({}, g4, a, b, 1.0f);
    ops::bradley_terry_backward({}, d4, d_a, d_b, 1.0f);
    compare("bradley_terry_backward/drejected", where + " only", d4, g4, row_tol);
  }
}

TEST_CASE("cuda tensors: copies, resize, contexts", "[cuda][tensor]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Rng rng(37);
  auto h = uniform(Shape{3, 5}, rng);
  auto d = up(h);
  CHECK(down(d.view()) == h.data);
  auto e = p4lm::to<p4lm::backend::cuda>(d);  // device to device, deep
  CHECK(e.data() != d.data());
  d.fill(2.0f);
  CHECK(down(e.view()) == h.data);
  CHECK(down(d.view()) == std::vector<float>(15, 2.0f));
  const float* before = d.data();
  d.resize(Shape{2, 2});  // shrinking keeps the buffer
  CHECK(d.data() == before);
  CHECK(d.capacity() == 15);
  d.resize(Shape{4, 4}, 1.0f);  // growing reallocates
  CHECK(d.numel() == 16);
  CHECK(down(d.view()) == std::vector<float>(16, 1.0f));
  p4lm::CudaTensor<float> moved = std::move(d);
  CHECK(d.data() == nullptr);
  CHECK(moved.numel() == 16);
  Host<float> back(Shape{3, 5});
  p4lm::copy(back.view(), e.view());
  CHECK(back.data == h.data);
  CHECK_THROWS_AS(p4lm::copy(back.view(), moved.view()), p4lm::ShapeError);
  p4lm::CudaTensor<float> rows(Shape{3, 5});
  p4lm::copy(rows.view(), e.view());
  CHECK(down(rows[1]) == std::vector<float>(h.data.begin() + 5, h.data.begin() + 10));
  // Work on another context's stream.
  p4lm::cuda::Context other;
  {
    p4lm::cuda::ContextScope scope(other);
    CHECK(&p4lm::cuda::current_context() == &other);
    p4lm::CudaTensor<float> t(Shape{4}, 3.0f);
    p4lm::ops::gelu_forward(t, t);
    p4lm::cuda::synchronize();
  }
  CHECK(&p4lm::cuda::current_context() == &p4lm::cuda::default_context());
}

TEST_CASE("cuda ops report bad ids in device memory as InvalidArgument naming the op", "[cuda][errors]") {
  P4LM_REQUIRE_CUDA_DEVICE();
  Host<std::int32_t> bad(Shape{1, 3});
  bad.data = {0, 5, 1};
  auto d_bad = up(bad);
  p4lm::CudaTensor<float> wte(Shape{4, 2}, 1.0f), out(Shape{1, 3, 2});
  p4lm::ops::embedding_forward(out, d_bad, wte);
  CHECK_THROWS_WITH(p4lm::cuda::synchronize(),
                    Catch::Contains("embedding_forward: ids") && Catch::Contains("5"));
  p4lm::cuda::synchronize();  // the record was cleared
  p4lm::CudaTensor<float> logits(Shape{3, 4}, 0.0f), losses(Shape{1, 3});
  auto mean =
      p4lm::ops::softmax_cross_entropy_forward(losses, {}, logits.view().reshaped(Shape{1, 3, 4}), d_bad);
  CHECK_THROWS_WITH(mean.get(), Catch::Contains("softmax_cross_entropy_forward: targets"));
  CHECK_THROWS_AS(p4lm::ops::gelu_forward(out, wte), p4lm::ShapeError);
}
