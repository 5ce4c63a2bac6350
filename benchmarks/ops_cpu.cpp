// CPU op throughput at GPT-2-small shapes (C = 768, rows B·T = 64 ... 4096), each op printed next to
// its yardstick measured in the same run: GEMM-based ops against raw cblas_sgemm on the same shapes
// (GFLOP/s), memory-bound ops against the measured copy bandwidth (GB/s of compulsory traffic).
//
//   bench_ops_cpu [--json] [--quick] [--reps N] [--cpu-time] [--only WORD]...
//
// --only WORD (repeatable) runs only the rows whose op name contains one of the words; the copy
// yardstick is always measured.
//
// --cpu-time times with the process CPU clock instead of the wall clock: on a loaded machine, run it
// with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 and the ratios stay meaningful (time a thread spends
// descheduled is not counted; with several threads, spinning would be).
//
// OpenBLAS picks its kernels at load time from the CPU or from OPENBLAS_CORETYPE; the header names
// the kernel that ran. Timing: warm-up, then the median of N runs.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include <p4lm/core/rng.hpp>
#include <p4lm/core/tensor.hpp>
#include <p4lm/ops/ops.hpp>

using namespace p4lm;
using Clock = std::chrono::steady_clock;

namespace {

int g_reps = 7;
bool g_cpu_time = false;

double now_seconds() {
  if (g_cpu_time) {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Median seconds of `reps` runs of f after one warm-up run.
double time_median(const std::function<void()>& f, int reps = g_reps) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_seconds();
    f();
    t.push_back(now_seconds() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Median seconds of a raw OpenBLAS yardstick, then a pause: after a call OpenBLAS's own worker threads
// spin (sched_yield) for its thread timeout, 2^28 cycles by default, and on 2 cores they compete with
// the OpenMP team of the p4lm op timed next (seen as medians of whole 4 ms scheduler ticks, 13-55% of
// sgemm). 200 ms lets them go to sleep first, so each side is timed on an otherwise idle machine.
double time_blas_yardstick(const std::function<void()>& f) {
  const double t = time_median(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return t;
}

CpuTensor<float> random(Shape s, std::uint64_t seed, float scale = 1.0f) {
  CpuTensor<float> t(s);
  float* d = t.data();
  const std::size_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < n; ++i) d[i] = scale * (2.0f * Rng::uniform_at(seed, 0, i) - 1.0f);
  return t;
}

// FP32 FMA throughput of all threads: independent vector chains, enough to cover FMA latency.
double measure_peak_gflops() {
#if defined(__AVX512F__)
  constexpr int lanes = 16;
#else
  constexpr int lanes = 8;
#endif
  typedef float Vec __attribute__((vector_size(lanes * 4)));
  constexpr int chains = 12;
  const long iters = 20'000'000;
  double sink = 0;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int threads = 1;
    const double t0 = now_seconds();
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      Vec acc[chains];
      const Vec zero = {};
      const Vec a = zero + 0.999999f, b = zero + 1e-7f;
      for (int j = 0; j < chains; ++j) acc[j] = zero + float(j + omp_get_thread_num());
      for (long i = 0; i < iters; ++i)
#pragma GCC unroll 12
        for (int j = 0; j < chains; ++j) acc[j] = acc[j] * a + b;
      float s = 0;
      for (int j = 0; j < chains; ++j)
        for (int l = 0; l < lanes; ++l) s += acc[j][l];
      sink += s;
    }
    const double sec = (now_seconds() - t0) / (g_cpu_time ? threads : 1);
    best = std::max(best, 2.0 * lanes * chains * double(iters) * threads / sec / 1e9);
  }
  if (sink == 42.0) std::puts("");  // keep the loop alive
  return best;
}

// memcpy of a buffer far larger than the caches, split across the OpenMP threads; GB/s counts the
// bytes read plus the bytes written.
double measure_copy_gbs(std::size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const double sec = time_median([&] {
#pragma omp parallel
    {
      const std::size_t nt = std::size_t(omp_get_num_threads()), t = std::size_t(omp_get_thread_num());
      const std::size_t per = (bytes + nt - 1) / nt, b = std::min(bytes, t * per),
                        e = std::min(bytes, b + per);
      std::memcpy(dst.data() + b, src.data() + b, e - b);
    }
  });
  return 2.0 * double(bytes) / sec / 1e9;
}

struct Row {
  std::string op, shape, unit;
  double ms = 0, rate = 0;  // rate in `unit` (GFLOP/s or GB/s)
  std::string yardstick;    // "sgemm" or "copy"
  double yard_rate = 0;     // the yardstick's rate for the same work
};
std::vector<Row> g_rows;
bool g_json = false;
std::vector<std::string> g_only;  // --only words; empty: every row

bool wanted(const char* op) {
  if (g_only.empty()) return true;
  return std::any_of(g_only.begin(), g_only.end(),
                     [&](const std::string& w) { return std::string(op).find(w) != std::string::npos; });
}

// A group of rows whose names start with `prefix` may hold a wanted row (its setup is worth doing).
bool wanted_group(const std::string& prefix) {
  return g_only.empty() || std::any_of(g_only.begin(), g_only.end(), [&](const std::string& w) {
           return w.find(prefix) != std::string::npos || prefix.find(w) != std::string::npos;
         });
}

void report(Row r) {
  if (!g_json) {
    const double pct = r.yard_rate > 0 ? 100.0 * r.rate / r.yard_rate : 0;
    std::printf("%-34s %-22s %9.3f ms %9.1f %-7s | %-5s %8.1f  %5.0f%%\n", r.op.c_str(), r.shape.c_str(),
                r.ms, r.rate, r.unit.c_str(), r.yardstick.c_str(), r.yard_rate, pct);
    std::fflush(stdout);
  }
  g_rows.push_back(std::move(r));
}

std::string shape_str(std::initializer_list<std::size_t> d) {
  std::string s;
  for (auto x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

// GEMM rows: matmul forward and backward against the raw cblas_sgemm calls of the same shapes.
void bench_matmul(std::size_t N, std::size_t C, std::size_t OC) {
  auto inp = random(Shape{N, C}, 1), w = random(Shape{OC, C}, 2, 0.05f), b = random(Shape{OC}, 3);
  auto out = random(Shape{N, OC}, 4), dout = random(Shape{N, OC}, 5);
  CpuTensor<float> dinp(Shape{N, C}), dw(Shape{OC, C}), db(Shape{OC});
  const int n = int(N), c = int(C), oc = int(OC);
  const double fwd_flop = 2.0 * double(N) * double(C) * double(OC), bwd_flop = 2 * fwd_flop;
  const std::string shape = shape_str({N, C, OC});
  const double raw_f = time_blas_yardstick([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, oc, c, 1.f, inp.data(), c, w.data(), c, 0.f,
                out.data(), oc);
  });
  const double op_f = time_median([&] { ops::matmul_forward(out, inp, w, b); });
  report({"matmul_forward (+bias)", shape, "GFLOP/s", op_f * 1e3, fwd_flop / op_f / 1e9, "sgemm",
          fwd_flop / raw_f / 1e9});
  const double raw_b = time_blas_yardstick([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c, oc, 1.f, dout.data(), oc, w.data(), c, 1.f,
                dinp.data(), c);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oc, c, n, 1.f, dout.data(), oc, inp.data(), c, 1.f,
                dw.data(), c);
  });
  const double op_b = time_median([&] { ops::matmul_backward(dinp, dw, db, dout, inp, w); });
  report({"matmul_backward (dinp,dW,db)", shape, "GFLOP/s", op_b * 1e3, bwd_flop / op_b / 1e9, "sgemm",
          bwd_flop / raw_b / 1e9});
}

// Attention-shaped batched product: heads of (T, 64) · (T, 64)ᵀ, against a plain loop of sgemm calls.
void bench_batched(std::size_t heads, std::size_t T, std::size_t D) {
  auto q = random(Shape{heads, T, D}, 6), k = random(Shape{heads, T, D}, 7);
  CpuTensor<float> att(Shape{heads, T, T});
  const double flop = 2.0 * double(heads) * double(T) * double(T) * double(D);
  const int t = int(T), d = int(D);
  const double raw = time_blas_yardstick([&] {
    for (std::size_t h = 0; h < heads; ++h)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, d, 1.f, q.data() + h * T * D, d,
                  k.data() + h * T * D, d, 0.f, att.data() + h * T * T, t);
  });
  const double op = time_median([&] { ops::batched_matmul(att, q, k, false, true, 0.125f); });
  report({"batched_matmul q·kᵀ", shape_str({heads, T, D}), "GFLOP/s", op * 1e3, flop / op / 1e9, "sgemm",
          flop / raw / 1e9});
}

// Times f only when the row is wanted (--only), so a filtered run skips the others' work.
template <class F>
void mem_row(const char* op, const std::string& shape, double bytes, double copy_gbs, F&& f) {
  if (!wanted(op)) return;
  const double sec = time_median(f);
  report({op, shape, "GB/s", sec * 1e3, bytes / sec / 1e9, "copy", copy_gbs});
}

// Element-wise and lookup ops at (N, C) or (N, 4C): GB/s of the bytes each must read and write.
void bench_memory(std::size_t N, std::size_t C, double copy_gbs) {
  const std::size_t H = 4 * C, nh = N * H, nc = N * C;
  auto x = random(Shape{N, H}, 8), y = random(Shape{N, H}, 9), g = random(Shape{N, H}, 10);
  CpuTensor<float> out(Shape{N, H}), d1(Shape{N, H}), d2(Shape{N, H});
  const std::string sh = shape_str({N, H}), sc = shape_str({N, C});
  const double B = 4.0;  // bytes per float
  mem_row("gelu_forward", sh, 2 * B * nh, copy_gbs, [&] { ops::gelu_forward(out, x); });
  mem_row("gelu_backward", sh, 4 * B * nh, copy_gbs, [&] { ops::gelu_backward(d1, g, x); });
  mem_row("swiglu_forward", sh, 3 * B * nh, copy_gbs, [&] { ops::swiglu_forward(out, x, y); });
  mem_row("swiglu_backward", sh, 9 * B * nh, copy_gbs, [&] { ops::swiglu_backward(d1, d2, g, x, y); });
  auto xc = x.view().reshaped(Shape{N * 4, C}).rows(0, N), yc = y.view().reshaped(Shape{N * 4, C}).rows(0, N);
  auto oc = out.view().reshaped(Shape{N * 4, C}).rows(0, N),
       gc = g.view().reshaped(Shape{N * 4, C}).rows(0, N);
  auto dc1 = d1.view().reshaped(Shape{N * 4, C}).rows(0, N),
       dc2 = d2.view().reshaped(Shape{N * 4, C}).rows(0, N);
  mem_row("residual_forward", sc, 3 * B * nc, copy_gbs, [&] { ops::residual_forward(oc, xc, yc); });
  mem_row("residual_backward", sc, 5 * B * nc, copy_gbs, [&] { ops::residual_backward(dc1, dc2, gc); });
  mem_row("dropout_forward p=0.1", sc, 2 * B * nc, copy_gbs,
          [&] { ops::dropout_forward(oc, xc, 0.1, 1, 2); });
  mem_row("dropout_backward p=0.1", sc, 3 * B * nc, copy_gbs,
          [&] { ops::dropout_backward(dc1, gc, 0.1, 1, 2); });
  // Embedding: GPT-2's tables (V = 50257, 1024 positions), ids spread over the vocabulary.
  const std::size_t V = 50257, T = std::min<std::size_t>(N, 1024);
  static CpuTensor<float> wte = random(Shape{V, C}, 11, 0.02f), wpe = random(Shape{1024, C}, 12, 0.02f);
  static CpuTensor<float> dwte(Shape{V, C}), dwpe(Shape{1024, C});
  Tensor<backend::cpu, std::int32_t> ids(Shape{N / T, T});
  for (std::size_t i = 0; i < N; ++i) ids.data()[i] = std::int32_t(Rng::u32_at(5, 0, i) % V);
  auto emb = oc.reshaped(Shape{N / T, T, C}), demb = gc.reshaped(Shape{N / T, T, C});
  mem_row("embedding_forward (wte+wpe)", sc, 3 * B * nc, copy_gbs,
          [&] { ops::embedding_forward(emb, ids, wte, wpe); });
  mem_row("embedding_backward (dwte,dwpe)", sc, 5 * B * nc, copy_gbs,
          [&] { ops::embedding_backward(dwte, dwpe, demb, ids); });
}

// Vocabulary-sized rows (V = 50257): cross-entropy and log-prob gather. GB/s of logits read/written.
void bench_vocab(std::size_t N, double copy_gbs) {
  const std::size_t V = 50257;
  auto logits = random(Shape{N, V}, 13, 4.0f);
  CpuTensor<float> work(Shape{N, V}), probs(Shape{N, V}), dlogits(Shape{N, V}), losses(Shape{N}),
      lse(Shape{N}), lp(Shape{N}), dlp = random(Shape{N}, 14);
  Tensor<backend::cpu, std::int32_t> t(Shape{N});
  for (std::size_t i = 0; i < N; ++i) t.data()[i] = std::int32_t(Rng::u32_at(6, 0, i) % V);
  const double nv = double(N) * V * 4.0;
  const std::string s = shape_str({N, V});
  // The backward rows read what forward leaves (probs, lse): run it once even when filtered out.
  ops::softmax_cross_entropy_forward(losses, probs, logits, t);
  ops::logprob_gather_forward(lp, lse, {}, logits, t);
  mem_row("softmax_xent_forward (+probs)", s, 2 * nv, copy_gbs,
          [&] { ops::softmax_cross_entropy_forward(losses, probs, logits, t); });
  mem_row("softmax_xent_backward", s, 3 * nv, copy_gbs,
          [&] { ops::softmax_cross_entropy_backward(dlogits, probs, t); });
  // Fused works in place: time it on a fresh copy each run (the copy is timed apart and subtracted).
  if (wanted("softmax_xent_fused")) {
    const double cp = time_median([&] { copy(work.view(), logits.view()); });
    const double fused = time_median([&] {
      copy(work.view(), logits.view());
      ops::softmax_cross_entropy_fused(work, losses, t);
    });
    const double sec = std::max(fused - cp, 1e-9);
    report({"softmax_xent_fused (in place)", s, "GB/s", sec * 1e3, 2 * nv / sec / 1e9, "copy", copy_gbs});
  }
  mem_row("logprob_gather_forward (+lse)", s, nv, copy_gbs,
          [&] { ops::logprob_gather_forward(lp, lse, {}, logits, t); });
  mem_row("logprob_gather_backward", s, 3 * nv, copy_gbs,
          [&] { ops::logprob_gather_backward(dlogits, dlp, logits, t, lse); });
}

// Optimizer ops over P parameters: AdamW reads p, g, m, v and writes p, m, v; clipping reads g for
// the norm and reads + writes it to scale.
void bench_optimizer(std::size_t P, double copy_gbs) {
  auto p = random(Shape{P}, 15), g = random(Shape{P}, 16), m = random(Shape{P}, 17, 0.01f),
       v = random(Shape{P}, 18, 0.0f);
  std::int64_t step = 1;
  const ops::AdamWConfig cfg{.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  const std::string s = shape_str({P});
  mem_row("adamw_update", s, 7 * 4.0 * double(P), copy_gbs,
          [&] { ops::adamw_update(p, g, m, v, step++, cfg); });
  std::vector<ops::CpuView<float>> grads{g};
  mem_row("global_grad_norm", s, 4.0 * double(P), copy_gbs, [&] { (void)ops::global_grad_norm(grads); });
  // max_norm just below the current norm, so every run scales (by a factor ~1: values stay in range).
  // Clipping leaves the norm at max_norm, so the next run's bound is lowered by 1e-4: the timed work
  // is one clip_grad_norm (a norm pass and a scaling pass), not an extra norm for the bound.
  double max_norm = 0.9999 * ops::global_grad_norm(grads);
  mem_row("clip_grad_norm (scales)", s, 3 * 4.0 * double(P), copy_gbs, [&] {
    (void)ops::clip_grad_norm(grads, max_norm);
    max_norm *= 0.9999;
  });
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json")
      g_json = true;
    else if (a == "--cpu-time")
      g_cpu_time = true;
    else if (a == "--quick")
      quick = true;
    else if (a == "--only" && i + 1 < argc)
      g_only.emplace_back(argv[++i]);
    else if (a == "--reps" && i + 1 < argc)
      g_reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--json] [--quick] [--reps N] [--cpu-time] [--only WORD]...\n",
                   argv[0]);
      return 2;
    }
  }
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const double peak = measure_peak_gflops();
  const double copy_gbs = measure_copy_gbs(std::size_t(512) << 20);
  if (!g_json) {
    std::printf("OpenBLAS kernel: %s (OPENBLAS_CORETYPE=%s), %d BLAS threads, %d OpenMP threads\n",
                backend::cpu_blas::corename(), coretype ? coretype : "(unset)",
                backend::cpu_blas::num_threads(), omp_get_max_threads());
    std::printf(
        "measured FP32 FMA peak %.0f GFLOP/s (all threads); memcpy 512 MiB %.1f GB/s (read+write); %s\n",
        peak, copy_gbs, g_cpu_time ? "process CPU time" : "wall clock");
    std::printf("%-34s %-22s %12s %17s | yardstick (same run)\n", "op", "shape", "time", "rate");
  }
  const std::vector<std::size_t> rows =
      quick ? std::vector<std::size_t>{64, 1024} : std::vector<std::size_t>{64, 256, 1024, 4096};
  const std::size_t C = 768;
  for (std::size_t N : rows) {
    if (!wanted_group("matmul_")) break;
    bench_matmul(N, C, 3 * C);  // qkv projection
    bench_matmul(N, C, 4 * C);  // MLP up projection
    bench_matmul(N, 4 * C, C);  // MLP down projection
  }
  for (std::size_t N : rows)
    if (wanted_group("batched_matmul"))
      bench_batched(48, std::max<std::size_t>(N / 4, 16), 64);  // B = 4, 12 heads
  for (std::size_t N : rows) bench_memory(N, C, copy_gbs);
  for (std::size_t N : rows)
    if (wanted_group("softmax_xent") || wanted_group("logprob_gather")) bench_vocab(N, copy_gbs);
  if (wanted_group("adamw") || wanted_group("grad_norm")) bench_optimizer(std::size_t(1) << 24, copy_gbs);

  if (g_json) {
    std::printf(
        "{\"openblas_corename\": \"%s\", \"openblas_coretype_env\": \"%s\", \"omp_threads\": %d, "
        "\"blas_threads\": %d, \"clock\": \"%s\",\n",
        backend::cpu_blas::corename(), coretype ? coretype : "", omp_get_max_threads(),
        backend::cpu_blas::num_threads(), g_cpu_time ? "process cpu time" : "wall");
    std::printf(" \"peak_gflops\": %.1f, \"copy_gbs\": %.2f, \"rows\": [\n", peak, copy_gbs);
    for (std::size_t i = 0; i < g_rows.size(); ++i) {
      const Row& r = g_rows[i];
      std::printf(
          "  {\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.4f, \"rate\": %.2f, \"unit\": \"%s\", "
          "\"yardstick\": \"%s\", \"yardstick_rate\": %.2f}%s\n",
          r.op.c_str(), r.shape.c_str(), r.ms, r.rate, r.unit.c_str(), r.yardstick.c_str(), r.yard_rate,
          i + 1 < g_rows.size() ? "," : "");
    }
    std::printf("]}\n");
  }
  return 0;
}
