#pragma once
// Helpers of the CUDA conformance suite (in the manner of ggml's test-backend-ops): host tensors with
// random contents from p4lm::Rng, upload/download, and a comparison that prints one line per checked
// output (op, case, worst |difference|, worst difference relative to the tolerance) and keeps the worst
// per op for a summary printed at exit. A test without a device is skipped (P4LM_REQUIRE_CUDA_DEVICE).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <p4lm/cuda.hpp>

#include "cpu_reference.hpp"
#include "skip.hpp"

// Leaves the test as skipped (tests/support/skip.hpp: ctest reports it skipped, not passed) where
// there is no GPU; device_count() throws where the query fails for another reason, failing the test.
#define P4LM_REQUIRE_CUDA_DEVICE()                                      \
  do {                                                                  \
    if (::p4lm::cuda::device_count() == 0) P4LM_SKIP("no CUDA device"); \
  } while (0)

namespace conformance {

using p4lm::Shape;

// A host tensor: shape + std::vector (no xtensor in .cu files).
template <class T = float>
struct Host {
  Shape shape;
  std::vector<T> data;
  Host() = default;
  explicit Host(Shape s, T value = T(0)) : shape(s), data(s.numel(), value) {}
  p4lm::TensorView<p4lm::backend::cpu, T> view() { return {data.data(), shape}; }
  operator p4lm::TensorView<p4lm::backend::cpu, T>() { return view(); }  // NOLINT
  std::size_t numel() const { return data.size(); }
};

inline Host<float> uniform(Shape s, p4lm::Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  Host<float> h(s);
  for (auto& x : h.data) x = lo + (hi - lo) * rng.uniform();
  return h;
}
inline Host<float> normal(Shape s, p4lm::Rng& rng, float stddev = 1.0f) {
  Host<float> h(s);
  for (auto& x : h.data) x = static_cast<float>(stddev * rng.normal());
  return h;
}
inline Host<std::int32_t> ids(Shape s, p4lm::Rng& rng, std::int32_t limit) {
  Host<std::int32_t> h(s);
  for (auto& x : h.data) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(limit)));
  return h;
}

template <class T>
p4lm::CudaTensor<T> up(const Host<T>& h) {
  return p4lm::CudaTensor<T>(p4lm::TensorView<p4lm::backend::cpu, T>(const_cast<T*>(h.data.data()), h.shape));
}
template <class T>
std::vector<T> down(const p4lm::TensorView<p4lm::backend::cuda, T>& d) {
  return p4lm::to_vector(d);
}

inline std::string str(const Shape& s) {
  return s.str();
}
template <class... Parts>
std::string describe(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

struct Tolerance {
  double atol;
  double rtol;
};

struct Worst {
  double abs = 0;
  double ratio = 0;  // |diff| / (atol + rtol |cpu|); <= 1 passes
  std::string where;
};
inline std::map<std::string, Worst>& worst_by_op() {
  static std::map<std::string, Worst> m;
  return m;
}
struct SummaryAtExit {
  ~SummaryAtExit() {
    if (worst_by_op().empty()) return;
    std::printf("\n[cuda conformance] worst difference per op (ratio = |diff| / tolerance, <= 1 passes)\n");
    for (const auto& [op, w] : worst_by_op())
      std::printf("  %-40s max|diff| %.3e  ratio %.3f  (%s)\n", op.c_str(), w.abs, w.ratio, w.where.c_str());
  }
};
inline SummaryAtExit summary_at_exit;

// Compares a CUDA result with the CPU reference element by element.
template <class T>
void compare(const std::string& op, const std::string& where, const std::vector<T>& gpu,
             const std::vector<T>& cpu, Tolerance tol) {
  REQUIRE(gpu.size() == cpu.size());
  double worst_abs = 0, worst_ratio = 0;
  std::size_t at = 0, bad = 0;
  for (std::size_t i = 0; i < gpu.size(); ++i) {
    const double g = gpu[i], c = cpu[i];
    double d = std::fabs(g - c);
    if (std::isnan(g) || std::isnan(c))
      d = std::isnan(g) && std::isnan(c) ? 0.0 : INFINITY;
    else if (std::isinf(g) || std::isinf(c))
      d = g == c ? 0.0 : INFINITY;
    const double allowed = tol.atol + tol.rtol * std::fabs(c);
    // Zero tolerance means bit-exact; a non-finite mismatch is always out of tolerance.
    const double ratio = std::isinf(d) ? INFINITY : allowed > 0 ? d / allowed : (d > 0 ? INFINITY : 0.0);
    if (ratio > 1) ++bad;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      at = i;
    }
    worst_abs = std::max(worst_abs, d);
  }
  std::printf("[cuda conformance] %-36s %-28s n=%-8zu max|diff| %.3e  ratio %.3f%s\n", op.c_str(),
              where.c_str(), gpu.size(), worst_abs, worst_ratio, bad ? "  FAIL" : "");
  auto& w = worst_by_op()[op];
  w.abs = std::max(w.abs, worst_abs);
  if (worst_ratio >= w.ratio) {
    w.ratio = worst_ratio;
    w.where = where;
  }
  INFO(op << " " << where << ": " << bad << " of " << gpu.size() << " elements outside atol " << tol.atol
          << " + rtol " << tol.rtol << "; worst at " << at << ": cuda " << (gpu.empty() ? T(0) : gpu[at])
          << " vs cpu " << (cpu.empty() ? T(0) : cpu[at]));
  CHECK(bad == 0);
}
inline void compare(const std::string& op, const std::string& where, const p4lm::ops::CudaView& gpu,
                    const Host<float>& cpu, Tolerance tol) {
  compare(op, where, down(gpu), cpu.data, tol);
}
inline void compare_scalar(const std::string& op, const std::string& where, double gpu, double cpu,
                           Tolerance tol) {
  compare(op, where, std::vector<double>{gpu}, std::vector<double>{cpu}, tol);
}

}  // namespace conformance
