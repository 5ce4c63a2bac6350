#pragma once
// The CBLAS functions p4lm's CPU ops call, plus OpenBLAS's thread/kernel queries.
//
// OpenBLAS's <cblas.h> cannot share a translation unit with xtensor-blas (both define the enum
// CBLAS_ORDER), and p4lm's target carries xtensor-blas. So p4lm takes the declarations xtensor-blas
// itself uses (xflens' netlib-style cblas.h, guarded, int indices = OpenBLAS's LP64 blasint): a TU may
// include this header and <xtensor-blas/xlinalg.hpp> in any order. Never include <cblas.h> with p4lm.

#include <cstddef>
#include <limits>

#include <xflens/cxxblas/drivers/cblas.h>

#include "p4lm/core/error.hpp"

extern "C" {
// OpenBLAS extensions (declared in its cblas.h, which we cannot include; signatures as in 0.3.x).
// Weak, so p4lm still links against another CBLAS; use the wrappers below, which check for them.
void openblas_set_num_threads(int num_threads) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
char* openblas_get_corename(void) __attribute__((weak));
char* openblas_get_config(void) __attribute__((weak));
}

namespace p4lm::backend::cpu_blas {

// The kernel family OpenBLAS picked at load time (from the CPU, or OPENBLAS_CORETYPE): "Haswell",
// "Zen", "SkylakeX", "Cooperlake", ... Benchmarks print it, because it can halve GEMM speed.
inline const char* corename() {
  return openblas_get_corename ? openblas_get_corename() : "(not OpenBLAS)";
}
inline const char* config() {
  return openblas_get_config ? openblas_get_config() : "(not OpenBLAS)";
}
inline int num_threads() {
  return openblas_get_num_threads ? openblas_get_num_threads() : 1;
}
inline void set_num_threads(int n) {
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}

// Suspends OpenBLAS's own threads while OpenMP threads each run their own GEMMs.
class BlasSingleThreaded {
 public:
  explicit BlasSingleThreaded(bool active) {
    if (active) {
      saved_ = num_threads();
      if (saved_ > 1) set_num_threads(1);
    }
  }
  ~BlasSingleThreaded() {
    if (saved_ > 1) set_num_threads(saved_);
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_ = 0;
};

// Matrix sizes go to BLAS as int (LP64 OpenBLAS): refuse what would overflow instead of corrupting.
inline int blas_int(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    fail<InvalidArgument>(what, ": dimension ", n, " exceeds the BLAS index range");
  return static_cast<int>(n);
}

// Row-major GEMM for float and double: C = alpha * op(A) * op(B) + beta * C, op(A) is (m, k).
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace p4lm::backend::cpu_blas
