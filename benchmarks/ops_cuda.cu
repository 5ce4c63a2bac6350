// CUDA op benchmark: time per op (CUDA events on the op's stream), with the bytes each op must move as
// GB/s and the products as TFLOP/s, next to plain cublasSgemm at the same shapes and the device-to-device
// copy bandwidth (the roofline for the memory-bound ops). `--json` prints one JSON object instead of a
// table. Without a CUDA device it says so and exits with status 0.
//
//   bench_ops_cuda [--json] [--iters N]

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <p4lm/cuda.hpp>

namespace {

using p4lm::CudaTensor;
using p4lm::Shape;
namespace ops = p4lm::ops;

struct Result {
  std::string op, shape;
  double ms, gbps, tflops;
};

template <class T>
__global__ void fill_uniform(T* p, std::size_t n, std::uint64_t seed, float lo, float hi) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * p4lm::Rng::uniform_at(seed, 0, i);
}
__global__ void fill_ids(std::int32_t* p, std::size_t n, std::uint64_t seed, std::uint32_t limit) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<std::int32_t>(p4lm::Rng::u32_at(seed, 1, i) % limit);
}

CudaTensor<float> random_tensor(Shape s, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  CudaTensor<float> t(s);
  if (t.numel()) {
    fill_uniform<float>
        <<<p4lm::cuda::detail::grid_for(t.numel(), 256), 256, 0, p4lm::cuda::current_context().stream()>>>(
            t.data(), t.numel(), seed, lo, hi);
    P4LM_CUDA_CHECK_LAUNCH(fill_uniform);
  }
  return t;
}
CudaTensor<std::int32_t> random_ids(Shape s, std::uint64_t seed, std::uint32_t limit) {
  CudaTensor<std::int32_t> t(s);
  fill_ids<<<p4lm::cuda::detail::grid_for(t.numel(), 256), 256, 0, p4lm::cuda::current_context().stream()>>>(
      t.data(), t.numel(), seed, limit);
  P4LM_CUDA_CHECK_LAUNCH(fill_ids);
  return t;
}

int iterations = 20;

// Mean milliseconds per call over `iterations` calls after 3 warm-up calls.
double time_ms(const std::function<void()>& f) {
  cudaStream_t s = p4lm::cuda::current_context().stream();
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t start, stop;
  P4LM_CUDA_CHECK(cudaEventCreate(&start));
  P4LM_CUDA_CHECK(cudaEventCreate(&stop));
  P4LM_CUDA_CHECK(cudaEventRecord(start, s));
  for (int i = 0; i < iterations; ++i) f();
  P4LM_CUDA_CHECK(cudaEventRecord(stop, s));
  P4LM_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  P4LM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  P4LM_CUDA_CHECK(cudaEventDestroy(start));
  P4LM_CUDA_CHECK(cudaEventDestroy(stop));
  p4lm::cuda::synchronize();
  return ms / iterations;
}

std::vector<Result> results;
void record(const std::string& op, const std::string& shape, double ms, double bytes, double flops) {
  results.push_back({op, shape, ms, bytes / (ms * 1e-3) / 1e9, flops / (ms * 1e-3) / 1e12});
}

void bench_copy() {
  const std::size_t n = std::size_t(256) << 20;  // 1 GiB of floats
  auto a = random_tensor(Shape{n}, 1);
  CudaTensor<float> b(Shape{n});
  const double ms = time_ms([&] { p4lm::copy(b.view(), a.view()); });
  record("copy d2d", "256M floats", ms, 2.0 * n * 4, 0);
}

void bench_gemm(std::size_t N, std::size_t C, std::size_t OC) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C) + " . (" + std::to_string(OC) + "x" +
                            std::to_string(C) + ")T";
  auto inp = random_tensor(Shape{N, C}, 2), w = random_tensor(Shape{OC, C}, 3),
       b = random_tensor(Shape{OC}, 4);
  auto dout = random_tensor(Shape{N, OC}, 5);
  CudaTensor<float> out(Shape{N, OC}), dinp(Shape{N, C}, 0.0f), dw(Shape{OC, C}, 0.0f), db(Shape{OC}, 0.0f);
  const double flops = 2.0 * N * C * OC;
  const float one = 1.0f, zero = 0.0f;
  const int n = int(N), c = int(C), oc = int(OC);
  record("cublasSgemm (reference)", shape, time_ms([&] {
           P4LM_CUDA_CHECK(cublasSgemm(p4lm::cuda::current_context().blas(), CUBLAS_OP_T, CUBLAS_OP_N, oc, n,
                                       c, &one, w.data(), c, inp.data(), c, &zero, out.data(), oc));
         }),
         4.0 * (N * C + OC * C + N * OC), flops);
  record("matmul_forward +bias", shape, time_ms([&] { ops::matmul_forward(out, inp, w, b); }),
         4.0 * (N * C + OC * C + 2 * N * OC), flops);
  record("matmul_backward (dinp, dweight, dbias)", shape,
         time_ms([&] { ops::matmul_backward(dinp, dw, db, dout, inp, w); }),
         4.0 * (2 * N * OC + 2 * N * C + 3 * OC * C), 2 * flops);
}

void bench_attention(std::size_t B, std::size_t T, std::size_t H, std::size_t Hkv, std::size_t D) {
  const std::string shape = "B" + std::to_string(B) + " T" + std::to_string(T) + " H" + std::to_string(H) +
                            "/" + std::to_string(Hkv) + " D" + std::to_string(D);
  auto q = random_tensor(Shape{B, T, H, D}, 6), k = random_tensor(Shape{B, T, Hkv, D}, 7),
       v = random_tensor(Shape{B, T, Hkv, D}, 8), dout = random_tensor(Shape{B, T, H, D}, 9);
  CudaTensor<float> out(Shape{B, T, H, D}), probs(Shape{B, H, T, T}), dq(Shape{B, T, H, D}, 0.0f),
      dk(Shape{B, T, Hkv, D}, 0.0f), dv(Shape{B, T, Hkv, D}, 0.0f);
  const double flops = 4.0 * B * H * T * T * D;  // QKᵀ and PV (the full square: no causal skipping)
  const double probs_bytes = 4.0 * B * H * T * T;
  record("attention_forward causal", shape, time_ms([&] { ops::attention_forward(out, probs, q, k, v); }),
         3 * probs_bytes + 4.0 * (q.numel() + k.numel() + v.numel() + out.numel()), flops);
  record("attention_backward causal", shape,
         time_ms([&] { ops::attention_backward(dq, dk, dv, dout, q, k, v, probs); }),
         5 * probs_bytes + 8.0 * (q.numel() + k.numel() + v.numel() + out.numel()), 2 * flops);
  // The same products through cublasSgemmStridedBatched on (B·H) contiguous heads, for reference.
  auto qc = random_tensor(Shape{B * H, T, D}, 10), kc = random_tensor(Shape{B * H, T, D}, 11);
  CudaTensor<float> sc(Shape{B * H, T, T});
  record("batched_matmul QK^T (reference shape)", shape,
         time_ms([&] { ops::batched_matmul(sc, qc, kc, false, true); }), 4.0 * (2 * qc.numel() + sc.numel()),
         2.0 * B * H * T * T * D);
}

void bench_rows(std::size_t N, std::size_t C) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(C);
  auto x = random_tensor(Shape{N, C}, 12), w = random_tensor(Shape{C}, 13, 0.5f, 1.5f),
       b = random_tensor(Shape{C}, 14), dout = random_tensor(Shape{N, C}, 15),
       y = random_tensor(Shape{N, C}, 16);
  CudaTensor<float> out(Shape{N, C}), mean(Shape{N}), rstd(Shape{N}), dx(Shape{N, C}, 0.0f),
      dw(Shape{C}, 0.0f), db(Shape{C}, 0.0f);
  const double e = 4.0 * N * C;
  record("layernorm_forward", shape, time_ms([&] { ops::layernorm_forward(out, mean, rstd, x, w, b); }),
         2 * e, 0);
  record("layernorm_backward", shape,
         time_ms([&] { ops::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd); }), 4 * e, 0);
  record("rmsnorm_forward", shape, time_ms([&] { ops::rmsnorm_forward(out, rstd, x, w); }), 2 * e, 0);
  record("rmsnorm_backward", shape, time_ms([&] { ops::rmsnorm_backward(dx, dw, dout, x, w, rstd); }), 4 * e,
         0);
  record("gelu_forward", shape, time_ms([&] { ops::gelu_forward(out, x); }), 2 * e, 0);
  record("gelu_backward", shape, time_ms([&] { ops::gelu_backward(dx, dout, x); }), 4 * e, 0);
  record("swiglu_forward", shape, time_ms([&] { ops::swiglu_forward(out, x, y); }), 3 * e, 0);
  record("swiglu_backward", shape, time_ms([&] { ops::swiglu_backward(dx, out, dout, x, y); }), 7 * e, 0);
  record("residual_forward", shape, time_ms([&] { ops::residual_forward(out, x, y); }), 3 * e, 0);
  record("dropout_forward p=0.1", shape, time_ms([&] { ops::dropout_forward(out, x, 0.1, 42, 7); }), 2 * e,
         0);
  auto wcc = random_tensor(Shape{C, C}, 30);
  record("bias column sums (matmul_backward dbias only)", shape,
         time_ms([&] { ops::matmul_backward({}, {}, db, dout, x, wcc); }), e, 0);
}

void bench_rope_embedding(std::size_t B, std::size_t T, std::size_t H, std::size_t D, std::size_t V) {
  const std::string shape = "B" + std::to_string(B) + " T" + std::to_string(T) + " H" + std::to_string(H) +
                            " D" + std::to_string(D);
  auto x = random_tensor(Shape{B, T, H, D}, 17);
  auto pos = random_ids(Shape{B, T}, 18, 4096);
  CudaTensor<float> out(Shape{B, T, H, D});
  record("rope_forward", shape, time_ms([&] { ops::rope_forward(out, x, pos); }), 8.0 * x.numel(), 0);
  const std::size_t C = H * D;
  auto ids = random_ids(Shape{B, T}, 19, static_cast<std::uint32_t>(V));
  auto wte = random_tensor(Shape{V, C}, 20), wpe = random_tensor(Shape{T, C}, 21),
       dout = random_tensor(Shape{B, T, C}, 22);
  CudaTensor<float> emb(Shape{B, T, C}), dwte(Shape{V, C}, 0.0f), dwpe(Shape{T, C}, 0.0f);
  const std::string eshape = "B" + std::to_string(B) + " T" + std::to_string(T) + " V" + std::to_string(V) +
                             " C" + std::to_string(C);
  record("embedding_forward +pos", eshape, time_ms([&] { ops::embedding_forward(emb, ids, wte, wpe); }),
         4.0 * 3 * B * T * C, 0);
  record("embedding_backward (atomic dwte, dwpe)", eshape,
         time_ms([&] { ops::embedding_backward(dwte, dwpe, dout, ids); }), 4.0 * 4 * B * T * C, 0);
}

void bench_losses(std::size_t N, std::size_t V) {
  const std::string shape = std::to_string(N) + "x" + std::to_string(V);
  auto logits = random_tensor(Shape{N, V}, 23, -4.0f, 4.0f);
  auto targets = random_ids(Shape{N}, 24, static_cast<std::uint32_t>(V));
  CudaTensor<float> losses(Shape{N}), probs(Shape{N, V}), dlogits(Shape{N, V}, 0.0f), lp(Shape{N}),
      lse(Shape{N});
  const double e = 4.0 * N * V;
  record("softmax_cross_entropy_forward +probs", shape,
         time_ms([&] { (void)ops::softmax_cross_entropy_forward(losses, probs, logits, targets); }), 2 * e,
         0);
  record("softmax_cross_entropy_backward", shape,
         time_ms([&] { ops::softmax_cross_entropy_backward(dlogits, probs, targets); }), 3 * e, 0);
  CudaTensor<float> work(Shape{N, V});
  record("softmax_cross_entropy_fused (in place)", shape,
         time_ms([&] { (void)ops::softmax_cross_entropy_fused(work, losses, targets); }), 2 * e, 0);
  record("logprob_gather_forward +lse", shape,
         time_ms([&] { ops::logprob_gather_forward(lp, lse, {}, logits, targets); }), e, 0);
  record("logprob_gather_backward", shape,
         time_ms([&] { ops::logprob_gather_backward(dlogits, lp, logits, targets, lse); }), 3 * e, 0);
}

void bench_optimizer(std::size_t n) {
  const std::string shape = std::to_string(n) + " params";
  auto p = random_tensor(Shape{n}, 25), g = random_tensor(Shape{n}, 26, -1e-3f, 1e-3f);
  CudaTensor<float> m(Shape{n}, 0.0f), v(Shape{n}, 0.0f);
  struct Config {
    double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  } cfg;
  std::int64_t step = 1;
  record("adamw_update", shape, time_ms([&] { ops::adamw_update(p, g, m, v, step++, cfg); }), 4.0 * 7 * n, 0);
  std::vector<ops::CudaView> grads;
  const std::size_t pieces = 64;
  for (std::size_t i = 0; i < pieces; ++i)
    grads.push_back(g.view().rows(i * (n / pieces), (i + 1) * (n / pieces)));
  record("clip_grad_norm (64 tensors, no clip)", shape,
         time_ms([&] { (void)ops::clip_grad_norm(grads, 1e30); }), 4.0 * n, 0);
  record("clip_grad_norm (64 tensors, clips)", shape,
         time_ms([&] { (void)ops::clip_grad_norm(grads, 1e-6); }), 4.0 * 3 * n, 0);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      iterations = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--json] [--iters N]\n", argv[0]);
      return 2;
    }
  }
  if (p4lm::cuda::device_count() == 0) {
    if (json)
      std::printf("{\"device\": null, \"skipped\": \"no CUDA device\", \"results\": []}\n");
    else
      std::printf("bench_ops_cuda: no CUDA device, nothing to measure\n");
    return 0;
  }
  try {
    cudaDeviceProp prop{};
    int dev = 0;
    P4LM_CUDA_CHECK(cudaGetDevice(&dev));
    P4LM_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    bench_copy();
    bench_gemm(4096, 768, 768);
    bench_gemm(4096, 768, 3072);
    bench_gemm(4096, 3072, 768);
    bench_gemm(1024, 768, 50257);
    bench_attention(8, 512, 12, 12, 64);
    bench_attention(8, 512, 32, 8, 64);
    bench_attention(64, 128, 8, 8, 8);
    bench_rows(8192, 768);
    bench_rows(8192, 4096);
    bench_rope_embedding(8, 512, 12, 64, 50257);
    bench_losses(1024, 50257);
    bench_optimizer(std::size_t(124) << 20);
    if (json) {
      std::printf("{\"device\": \"%s\", \"iterations\": %d, \"results\": [\n", prop.name, iterations);
      for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        std::printf(
            "  {\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, \"GBps\": %.2f, \"TFLOPs\": %.3f}%s\n",
            r.op.c_str(), r.shape.c_str(), r.ms, r.gbps, r.tflops, i + 1 < results.size() ? "," : "");
      }
      std::printf("]}\n");
    } else {
      std::printf("device: %s, %d iterations per op (after 3 warm-ups), fp32, TF32 off\n\n", prop.name,
                  iterations);
      std::printf("%-42s %-28s %10s %10s %9s\n", "op", "shape", "ms", "GB/s", "TFLOP/s");
      for (const auto& r : results)
        std::printf("%-42s %-28s %10.4f %10.1f %9.2f\n", r.op.c_str(), r.shape.c_str(), r.ms, r.gbps,
                    r.tflops);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ops_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
