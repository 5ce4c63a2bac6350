// A two-layer MLP that learns XOR, written directly with p4lm's ops: the llm.c way of training,
// one forward/backward pair per layer, gradients accumulated into buffers, AdamW on each tensor.
//
//   example_mlp [steps]

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>
#include <p4lm/ops/ops.hpp>

using namespace p4lm;

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
  const std::size_t N = 4, In = 2, H = 16;
  const CpuTensor<float> x(Shape{N, In}, {0, 0, 0, 1, 1, 0, 1, 1}), y(Shape{N, 1}, {0, 1, 1, 0});

  // Parameters (w1, b1, w2, b2), their gradients and AdamW moments, all allocated once.
  Rng rng(7);
  std::vector<CpuTensor<float>> params{CpuTensor<float>(Shape{H, In}), CpuTensor<float>(Shape{H}),
                                       CpuTensor<float>(Shape{1, H}), CpuTensor<float>(Shape{1})};
  for (auto& p : params)
    for (float& v : p.span()) v = float(rng.normal() * 0.5);
  std::vector<CpuTensor<float>> grads, m, v;
  for (const auto& p : params) {
    grads.emplace_back(p.shape());
    m.emplace_back(p.shape());
    v.emplace_back(p.shape());
  }
  auto &w1 = params[0], &b1 = params[1], &w2 = params[2], &b2 = params[3];
  auto &dw1 = grads[0], &db1 = grads[1], &dw2 = grads[2], &db2 = grads[3];
  // Activations and their gradients.
  CpuTensor<float> h(Shape{N, H}), a(Shape{N, H}), logit(Shape{N, 1}), da(Shape{N, H}), dh(Shape{N, H}),
      dlogit(Shape{N, 1});
  const ops::AdamWConfig adamw{.lr = 0.05, .weight_decay = 0.0};

  for (int step = 1; step <= steps; ++step) {
    // forward: logit = w2 · gelu(w1 · x + b1) + b2, loss = BCE(logit, y)
    ops::matmul_forward(h, x, w1, b1);
    ops::gelu_forward(a, h);
    ops::matmul_forward(logit, a, w2, b2);
    const float loss = ops::bce_with_logits_forward(logit, y);
    // backward: zero the accumulators, then each layer in reverse
    for (auto* t : {&dw1, &db1, &dw2, &db2, &da, &dh, &dlogit}) t->zero();
    ops::bce_with_logits_backward(dlogit, logit, y);
    ops::matmul_backward(da, dw2, db2, dlogit, a, w2);
    ops::gelu_backward(dh, da, h);
    ops::matmul_backward({}, dw1, db1, dh, x, w1);
    // update
    for (std::size_t i = 0; i < params.size(); ++i)
      ops::adamw_update(params[i], grads[i], m[i], v[i], step, adamw);
    if (step == 1 || step % 50 == 0) std::printf("step %4d  loss %.5f\n", step, loss);
  }
  std::printf("predictions:");
  for (std::size_t i = 0; i < N; ++i)
    std::printf("  xor(%g, %g) = %.3f", x.data()[2 * i], x.data()[2 * i + 1],
                1.0 / (1.0 + std::exp(-logit.data()[i])));
  std::printf("\n");
}
