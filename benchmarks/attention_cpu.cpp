// CPU attention (forward + backward) and layernorm/rmsnorm throughput at GPT-2-small shapes
// (C = 768, 12 heads of 64, B*T = 4096 tokens), next to what the machine does in the same run:
// raw cblas_sgemm GFLOP/s and memcpy bandwidth.
//
//   bench_attention_cpu [--json] [--quick] [--repeats N] [--cpu-time]
//
// Attention FLOPs are counted dense: forward 4 B H T^2 D (QK^T and PV), backward 8 B H T^2 D (dV, dP,
// dQ, dK), causal or not (the causal pass computes the full score block and masks it). Norm bytes:
// forward reads x and writes out; backward reads dout and x and reads and writes dx (it accumulates).
// Times are the best of N repeats, wall clock by default. The build machines are shared (load averages
// of 10+ on 2 cores), so wall time there mostly measures the neighbours: --cpu-time uses the process's
// CPU time instead, which is the honest figure with one thread (OMP_NUM_THREADS=1
// OPENBLAS_NUM_THREADS=1). OpenBLAS picks its kernel at load time from OPENBLAS_CORETYPE: the kernel is
// printed; run once with `env -u OPENBLAS_CORETYPE`.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <omp.h>

#include <p4lm/backend/cpu/blas.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>
#include <p4lm/ops/attention.hpp>
#include <p4lm/ops/layernorm.hpp>
#include <p4lm/ops/rmsnorm.hpp>

namespace {

using p4lm::CpuTensor;
using p4lm::Shape;

bool use_cpu_time = false;

double now() {
  if (use_cpu_time) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double best_seconds(int repeats, const std::function<void()>& f) {
  f();  // warm-up: first-touch page faults, thread pools, per-thread scratch
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double start = now();
    f();
    best = std::min(best, now() - start);
  }
  return best;
}

CpuTensor<float> random_tensor(Shape shape, std::uint64_t seed) {
  CpuTensor<float> t(shape);
  p4lm::Rng rng(seed);
  for (auto& x : t.span()) x = rng.uniform() * 2.0f - 1.0f;
  return t;
}

struct Row {
  std::string what, shape, unit;
  double seconds, rate;
};

}  // namespace

int main(int argc, char** argv) {
  bool json = false, quick = false;
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json"))
      json = true;
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--cpu-time"))
      use_cpu_time = true;
    else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc)
      repeats = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--json] [--quick] [--repeats N] [--cpu-time]\n", argv[0]);
      return 2;
    }
  }
  if (quick) repeats = std::min(repeats, 2);
  std::string load;
  if (std::ifstream f("/proc/loadavg"); f) std::getline(f, load);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::vector<Row> rows;

  // ---- the machine: SGEMM and memcpy in this run ----
  for (const std::size_t n : {std::size_t{512}, std::size_t{1024}}) {
    auto a = random_tensor(Shape{n, n}, 1), b = random_tensor(Shape{n, n}, 2);
    CpuTensor<float> c(Shape{n, n});
    const int in = static_cast<int>(n);
    const double s = best_seconds(repeats, [&] {
      p4lm::backend::cpu_blas::gemm(false, false, in, in, in, 1.0f, a.data(), in, b.data(), in, 0.0f,
                                    c.data(), in);
    });
    rows.push_back({"cblas_sgemm", std::to_string(n) + "^3", "GFLOP/s", s, 2.0 * n * n * n / s / 1e9});
  }
  {
    const std::size_t bytes = std::size_t{256} << 20;
    std::vector<char> src(bytes, 1), dst(bytes, 0);
    const double s = best_seconds(repeats, [&] {
    // One memcpy per thread on its own slice, as the norms split rows.
#pragma omp parallel
      {
        const std::size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const std::size_t begin = bytes * t / nt, end = bytes * (t + 1) / nt;
        std::memcpy(dst.data() + begin, src.data() + begin, end - begin);
      }
    });
    rows.push_back({"memcpy (read + write)", "256 MiB", "GB/s", s, 2.0 * bytes / s / 1e9});
  }

  // ---- attention at GPT-2-small shapes: 12 heads of 64, B*T = 4096 ----
  const std::size_t H = 12, D = 64, tokens = 4096;
  std::vector<std::size_t> ts = {64, 128, 256, 512, 1024};
  if (quick) ts = {64, 256};
  for (const bool causal : {true, false}) {
    for (const std::size_t T : ts) {
      const std::size_t B = tokens / T;
      auto q = random_tensor(Shape{B, T, H, D}, 3), k = random_tensor(Shape{B, T, H, D}, 4),
           v = random_tensor(Shape{B, T, H, D}, 5), dout = random_tensor(Shape{B, T, H, D}, 6);
      CpuTensor<float> out(q.shape()), probs(Shape{B, H, T, T}), dq(q.shape(), 0.0f), dk(k.shape(), 0.0f),
          dv(v.shape(), 0.0f);
      p4lm::ops::AttentionOptions<> opt;
      opt.causal = causal;
      const double flops = 4.0 * B * H * T * T * D;
      const double fwd =
          best_seconds(repeats, [&] { p4lm::ops::attention_forward<float>(out, probs, q, k, v, opt); });
      const double bwd = best_seconds(
          repeats, [&] { p4lm::ops::attention_backward<float>(dq, dk, dv, dout, q, k, v, probs, opt); });
      const std::string shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=12 D=64";
      const std::string mode = causal ? "causal" : "bidirectional";
      rows.push_back({"attention forward, " + mode, shape, "GFLOP/s", fwd, flops / fwd / 1e9});
      rows.push_back({"attention backward, " + mode, shape, "GFLOP/s", bwd, 2 * flops / bwd / 1e9});
    }
  }

  // ---- norms: B*T = 4096 (fits in L3 once warm) and 32768 (DRAM) rows of C = 768 ----
  for (const std::size_t n : {std::size_t{4096}, std::size_t{32768}}) {
    const std::size_t C = 768;
    auto x = random_tensor(Shape{n, C}, 7), dout = random_tensor(Shape{n, C}, 8);
    auto w = random_tensor(Shape{C}, 9), b = random_tensor(Shape{C}, 10);
    CpuTensor<float> out(Shape{n, C}), mean(Shape{n}), rstd(Shape{n}), dx(Shape{n, C}, 0.0f),
        dw(Shape{C}, 0.0f), db(Shape{C}, 0.0f);
    const double bytes = 4.0 * n * C;
    const std::string shape = std::to_string(n) + " x 768";
    double s = best_seconds(repeats, [&] { p4lm::ops::layernorm_forward<float>(out, mean, rstd, x, w, b); });
    rows.push_back({"layernorm forward", shape, "GB/s", s, 2 * bytes / s / 1e9});
    s = best_seconds(repeats,
                     [&] { p4lm::ops::layernorm_backward<float>(dx, dw, db, dout, x, w, mean, rstd); });
    rows.push_back({"layernorm backward", shape, "GB/s", s, 4 * bytes / s / 1e9});
    s = best_seconds(repeats, [&] { p4lm::ops::rmsnorm_forward<float>(out, rstd, x, w); });
    rows.push_back({"rmsnorm forward", shape, "GB/s", s, 2 * bytes / s / 1e9});
    s = best_seconds(repeats, [&] { p4lm::ops::rmsnorm_backward<float>(dx, dw, dout, x, w, rstd); });
    rows.push_back({"rmsnorm backward", shape, "GB/s", s, 4 * bytes / s / 1e9});
  }

  const char* core = p4lm::backend::cpu_blas::corename();
  if (json) {
    std::printf(
        "{\"openblas_core\": \"%s\", \"OPENBLAS_CORETYPE\": \"%s\", \"omp_threads\": %d, \"load\": \"%s\",\n",
        core, coretype ? coretype : "(unset)", omp_get_max_threads(), load.c_str());
    std::printf(" \"rows\": [\n");
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::printf("  {\"what\": \"%s\", \"shape\": \"%s\", \"seconds\": %.6g, \"%s\": %.4g}%s\n",
                  rows[i].what.c_str(), rows[i].shape.c_str(), rows[i].seconds, rows[i].unit.c_str(),
                  rows[i].rate, i + 1 < rows.size() ? "," : "");
    std::printf(" ]}\n");
  } else {
    std::printf(
        "OpenBLAS kernel: %s (OPENBLAS_CORETYPE=%s), %d OpenMP / %d OpenBLAS threads, %s, load average "
        "%s\n\n",
        core, coretype ? coretype : "(unset)", omp_get_max_threads(), p4lm::backend::cpu_blas::num_threads(),
        use_cpu_time ? "process CPU time" : "wall clock", load.c_str());
    std::printf("| op | shape | best time (ms) | rate |\n| --- | --- | ---: | ---: |\n");
    for (const auto& r : rows)
      std::printf("| %s | %s | %.3f | %.1f %s |\n", r.what.c_str(), r.shape.c_str(), 1e3 * r.seconds, r.rate,
                  r.unit.c_str());
  }
  return 0;
}
