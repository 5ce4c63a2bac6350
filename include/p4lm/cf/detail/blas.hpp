#pragma once
// Internal to p4lm::cf. BLAS/LAPACK through xtensor-blas's own declarations (its bundled cblas.h and
// cxxlapack): including the system <cblas.h> as well would redefine CBLAS_ORDER in any translation
// unit that also uses xtensor-blas.

#include <xtensor-blas/xblas.hpp>
#include <xtensor-blas/xlapack.hpp>

#include "p4lm/core/error.hpp"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
}

namespace p4lm::cf::detail {

// ALS solves thousands of small systems from inside OpenMP loops; OpenBLAS's own thread pool would
// oversubscribe the cores, so it runs single-threaded while this guard lives.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(previous_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

// a (n x n, row-major, symmetric, upper triangle filled) <- Cholesky factor; b <- a^-1 b.
// Returns false if a is not positive definite.
inline bool cholesky_solve(float* a, float* b, int n) {
  // Row-major upper is column-major lower: LAPACK's 'L'.
  if (cxxlapack::potrf<int>('L', n, a, n) != 0) return false;
  return cxxlapack::potrs<int>('L', n, 1, a, n, b, n) == 0;
}

}  // namespace p4lm::cf::detail
