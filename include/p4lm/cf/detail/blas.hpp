#pragma once
// Internal to p4lm::cf. BLAS/LAPACK through xtensor-blas's own declarations (its bundled cblas.h and
// cxxlapack): including the system <cblas.h> as well would redefine CBLAS_ORDER in any translation
// unit that also uses xtensor-blas. OpenBLAS's thread control is backend/cpu/blas.hpp's.

#include <xtensor-blas/xblas.hpp>
#include <xtensor-blas/xlapack.hpp>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::cf::detail {

// a (n x n, row-major, symmetric, upper triangle filled) <- Cholesky factor; b <- a^-1 b.
// Returns false if a is not positive definite.
inline bool cholesky_solve(float* a, float* b, int n) {
  // Row-major upper is column-major lower: LAPACK's 'L'.
  if (cxxlapack::potrf<int>('L', n, a, n) != 0) return false;
  return cxxlapack::potrs<int>('L', n, 1, a, n, b, n) == 0;
}

}  // namespace p4lm::cf::detail
