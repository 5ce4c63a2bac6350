// skinny_gemm_nt against a double-precision reference, and the invariances decoding relies on: an
// output does not depend on the batch size, on its row's place in the batch, on the thread count or on
// which thread took its block.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <omp.h>

#include <catch2/catch.hpp>

#include "p4lm/backend/cpu/skinny_gemm.hpp"
#include "p4lm/core/rng.hpp"

using p4lm::backend::cpu_blas::skinny_gemm_nt;
using p4lm::backend::cpu_blas::SkinnyProduct;

namespace {
std::vector<float> random_vec(std::size_t n, std::uint64_t seed) {
  p4lm::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}
}  // namespace

TEST_CASE("skinny_gemm_nt matches x · Wᵀ + b for several products", "[backend][skinny_gemm]") {
  for (std::size_t k : {1, 7, 8, 64, 172, 300}) {
    for (std::size_t n : {1, 2, 5, 16}) {
      const std::size_t m1 = 44, m2 = 3, ldx = k + 3, ldo1 = m1 + 2;
      const auto x = random_vec(n * ldx, 1), w1 = random_vec(m1 * k, 2), w2 = random_vec(m2 * k, 3),
                 b1 = random_vec(m1, 4);
      std::vector<float> o1(n * ldo1, -7.0f), o2(n * m2, -7.0f);
      skinny_gemm_nt<float>(x.data(), n, ldx, k,
                            {{w1.data(), m1, o1.data(), ldo1, b1.data()}, {w2.data(), m2, o2.data(), m2}});
      for (std::size_t r = 0; r < n; ++r) {
        for (std::size_t j = 0; j < m1; ++j) {
          double ref = b1[j];
          for (std::size_t p = 0; p < k; ++p) ref += double(x[r * ldx + p]) * w1[j * k + p];
          CHECK(o1[r * ldo1 + j] == Approx(ref).margin(1e-4 * std::sqrt(double(k))));
        }
        CHECK(o1[r * ldo1 + m1] == -7.0f);  // past m: untouched
        for (std::size_t j = 0; j < m2; ++j) {
          double ref = 0;
          for (std::size_t p = 0; p < k; ++p) ref += double(x[r * ldx + p]) * w2[j * k + p];
          CHECK(o2[r * m2 + j] == Approx(ref).margin(1e-4 * std::sqrt(double(k))));
        }
      }
    }
  }
}

TEST_CASE("skinny_gemm_nt outputs do not depend on batch size, row or threads", "[backend][skinny_gemm]") {
  // Row 0 streams each block of w, the others go through register tiles of 3, 2 or 1 rows: every row
  // of every batch size must equal the same row computed alone.
  const std::size_t k = 300, m = 4000;  // large enough for the parallel path
  const auto w = random_vec(m * k, 6);
  for (std::size_t n : {2, 5, 16}) {
    const auto x = random_vec(n * k, 5);
    std::vector<float> all(n * m), one(m), serial(n * m);
    skinny_gemm_nt<float>(x.data(), n, k, k, {{w.data(), m, all.data(), m}});
    std::size_t differ = 0;
    for (std::size_t r = 0; r < n; ++r) {
      skinny_gemm_nt<float>(x.data() + r * k, 1, k, k, {{w.data(), m, one.data(), m}});
      for (std::size_t j = 0; j < m; ++j) differ += one[j] != all[r * m + j];
    }
    INFO("n = " << n);
    CHECK(differ == 0);
    // 1 thread, more threads than cores (blocks change hands), and a call from inside a parallel
    // region (attention's items), which stays on its thread.
    const int threads = omp_get_max_threads();
    for (int team : {1, 3, 5}) {
      omp_set_num_threads(team);
      std::fill(serial.begin(), serial.end(), 0.0f);
      skinny_gemm_nt<float>(x.data(), n, k, k, {{w.data(), m, serial.data(), m}});
      INFO("threads = " << team);
      CHECK(serial == all);
    }
    omp_set_num_threads(threads);
    std::vector<float> nested(n * m);
#pragma omp parallel num_threads(2)
#pragma omp single
    skinny_gemm_nt<float>(x.data(), n, k, k, {{w.data(), m, nested.data(), m}});
    CHECK(nested == all);
  }
}

TEST_CASE("skinny_gemm_nt with strided rows of w", "[backend][skinny_gemm]") {
  // Keys of one head in a KV cache: rows ldw apart. Same arithmetic as the dense copy, bit for bit.
  for (std::size_t k : {7, 48, 300}) {
    for (std::size_t n : {1, 4}) {
      const std::size_t m = 37, ldw = k + 21;
      const auto x = random_vec(n * k, 8), strided = random_vec(m * ldw, 9);
      std::vector<float> dense(m * k), o(n * m), od(n * m);
      for (std::size_t j = 0; j < m; ++j)
        std::copy(strided.begin() + static_cast<std::ptrdiff_t>(j * ldw),
                  strided.begin() + static_cast<std::ptrdiff_t>(j * ldw + k),
                  dense.begin() + static_cast<std::ptrdiff_t>(j * k));
      skinny_gemm_nt<float>(x.data(), n, k, k, {{strided.data(), m, o.data(), m, nullptr, ldw}});
      skinny_gemm_nt<float>(x.data(), n, k, k, {{dense.data(), m, od.data(), m}});
      INFO("k = " << k << ", n = " << n);
      CHECK(o == od);
      double ref = 0;
      for (std::size_t p = 0; p < k; ++p) ref += double(x[(n - 1) * k + p]) * dense[(m - 1) * k + p];
      CHECK(o[n * m - 1] == Approx(ref).margin(1e-4 * std::sqrt(double(k))));
    }
  }
}

TEST_CASE("BlockRange hands out every block once to owners and thieves", "[backend][skinny_gemm]") {
  // An owner takes chunks from the front while three thieves take single blocks from the back.
  using p4lm::backend::cpu_blas::detail::BlockRange;
  for (std::size_t blocks : {0, 1, 7, 1000}) {
    for (int round = 0; round < 20; ++round) {
      BlockRange range;
      range.reset(3, 3 + blocks);
      std::vector<int> taken(blocks + 3, 0);
      int bad_chunks = 0;
#pragma omp parallel num_threads(4)
      {
        std::vector<std::size_t> mine;
        if (omp_get_thread_num() == 0) {
          std::size_t first = 0, count = 0;
          while (range.take_front(5, first, count)) {
            if (count == 0 || count > 5) bad_chunks += 1;  // Catch2 asserts on the main thread only
            for (std::size_t b = first; b < first + count; ++b) mine.push_back(b);
          }
        } else {
          std::size_t b = 0;
          while (range.take_back(b)) mine.push_back(b);
        }
#pragma omp critical
        for (std::size_t b : mine) ++taken[b];
      }
      INFO("blocks = " << blocks);
      CHECK(bad_chunks == 0);
      CHECK(std::count(taken.begin(), taken.begin() + 3, 0) == 3);
      CHECK(std::count(taken.begin() + 3, taken.end(), 1) == static_cast<std::ptrdiff_t>(blocks));
    }
  }
}

TEST_CASE("skinny_gemm_nt in double", "[backend][skinny_gemm]") {
  const std::size_t k = 13, m = 19, n = 3;
  p4lm::Rng rng(7);
  std::vector<double> x(n * k), w(m * k), o(n * m);
  for (auto& v : x) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  skinny_gemm_nt<double>(x.data(), n, k, k, {{w.data(), m, o.data(), m}});
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t j = 0; j < m; ++j) {
      double ref = 0;
      for (std::size_t p = 0; p < k; ++p) ref += x[r * k + p] * w[j * k + p];
      CHECK(o[r * m + j] == Approx(ref).margin(1e-12));
    }
}
