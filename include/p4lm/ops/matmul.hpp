#pragma once
// Matrix products on the CPU, through OpenBLAS sgemm/dgemm.
//
// matmul_forward/backward is the Linear layer in llm.c/PyTorch layout: weight is (OC, C), so
// out = inp · weightᵀ + bias. batched_matmul is the general C[b] = alpha op(A[b]) op(B[b]) + beta C[b]
// that attention is written with; its gradient is itself with other transpose flags, so it has no
// _backward.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include <omp.h>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {

// A large GEMM split across the OpenMP team (C's rows or columns, whichever is longer), OpenBLAS
// single-threaded inside each part. OpenBLAS's pthread workers then never run beside the OpenMP team:
// on 2 cores the two pools competed (OpenBLAS workers sched_yield-spin after each GEMM while the team
// runs the element-wise ops between GEMMs, and the team spins while they run), and a GPT-2 training
// step spent about half its time spinning. Small products and calls from inside a parallel region
// go to BLAS as they are.
template <class T>
void team_gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb,
               T beta, T* c, int ldc) {
  const int threads = omp_get_max_threads();
  if (threads == 1 || omp_in_parallel() || double(m) * n * k < double(1 << 22) || std::max(m, n) < 32) {
    backend::cpu_blas::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_cols = n >= m;
  backend::cpu_blas::BlasSingleThreaded single(true);
#pragma omp parallel num_threads(threads)
  {
    const int parts = omp_get_num_threads(), t = omp_get_thread_num();
    const int len = by_cols ? n : m;
    const int per = ((len + parts - 1) / parts + 15) / 16 * 16;  // multiples of 16: whole cache lines
    const int begin = std::min(len, t * per), end = std::min(len, begin + per);
    if (begin < end) {
      if (by_cols)  // C[:, begin:end] = op(A) op(B)[:, begin:end]
        backend::cpu_blas::gemm(ta, tb, m, end - begin, k, alpha, a, lda,
                                b + (tb ? std::size_t(begin) * ldb : std::size_t(begin)), ldb, beta,
                                c + begin, ldc);
      else  // C[begin:end, :] = op(A)[begin:end, :] op(B)
        backend::cpu_blas::gemm(ta, tb, end - begin, n, k, alpha,
                                a + (ta ? std::size_t(begin) : std::size_t(begin) * lda), lda, b, ldb, beta,
                                c + std::size_t(begin) * ldc, ldc);
    }
  }
}

}  // namespace detail

// inp (..., C), weight (OC, C), bias (OC) or {} -> out (..., OC) = inp · weightᵀ + bias
template <Scalar T>
void matmul_forward(CpuView<T> out, const CpuView<T>& inp, const CpuView<T>& weight,
                    const CpuView<T>& bias = {}) {
  const auto dims = check::matmul_forward(out, inp, weight, bias);
  const std::size_t C = dims.in, OC = dims.out, N = dims.rows;
  const bool has_bias = is_given(bias);
  if (N == 0 || OC == 0) return;
  T* o = out.data();
  if (has_bias) {
    // Broadcast the bias into out, then let GEMM accumulate onto it (beta = 1): no second pass.
    const T* b = bias.data();
    detail::parallel_ranges(
        N,
        [&](std::size_t r0, std::size_t r1) {
          for (std::size_t r = r0; r < r1; ++r) std::copy(b, b + OC, o + r * OC);
        },
        std::max<std::size_t>(1, detail::parallel_grain / std::max<std::size_t>(OC, 1)));
  }
  if (C == 0) {
    if (!has_bias) std::fill(o, o + N * OC, T(0));
    return;
  }
  using backend::cpu_blas::blas_int;
  detail::team_gemm(false, true, blas_int(N, "matmul_forward"), blas_int(OC, "matmul_forward"),
                    blas_int(C, "matmul_forward"), T(1), inp.data(), blas_int(C, "matmul_forward"),
                    weight.data(), blas_int(C, "matmul_forward"), has_bias ? T(1) : T(0), o,
                    blas_int(OC, "matmul_forward"));
}

// dout (..., OC), inp (..., C), weight (OC, C)
//   -> dinp (..., C) += dout · weight,  dweight (OC, C) += doutᵀ · inp,  dbias (OC) += Σ_rows dout
// Each gradient is optional: pass {} to skip it (frozen weights, an input that needs no gradient).
template <Scalar T>
void matmul_backward(CpuView<T> dinp, CpuView<T> dweight, CpuView<T> dbias, const CpuView<T>& dout,
                     const CpuView<T>& inp, const CpuView<T>& weight) {
  const auto dims = check::matmul_backward(dinp, dweight, dbias, dout, inp, weight);
  const std::size_t C = dims.in, OC = dims.out, N = dims.rows;
  if (N == 0 || OC == 0) return;
  using backend::cpu_blas::blas_int;
  const int n = blas_int(N, "matmul_backward"), oc = blas_int(OC, "matmul_backward"),
            c = blas_int(C, "matmul_backward");
  if (C > 0 && is_given(dinp))
    detail::team_gemm(false, false, n, c, oc, T(1), dout.data(), oc, weight.data(), c, T(1), dinp.data(), c);
  if (C > 0 && is_given(dweight))
    detail::team_gemm(true, false, oc, c, n, T(1), dout.data(), oc, inp.data(), c, T(1), dweight.data(), c);
  if (is_given(dbias)) {
    // Column sums: each thread owns a slice of the OC columns and walks all rows (contiguous, no races).
    const T* d = dout.data();
    T* db = dbias.data();
    detail::parallel_ranges(
        OC,
        [&](std::size_t c0, std::size_t c1) {
          for (std::size_t r = 0; r < N; ++r) {
            const T* row = d + r * OC;
            for (std::size_t j = c0; j < c1; ++j) db[j] += row[j];
          }
        },
        N * OC >= 2 * detail::parallel_grain ? 16 : OC);
  }
}

// c (batch..., M, N) = alpha · op(a) · op(b) + beta · c, where op(a) is (M, K) and op(b) is (K, N);
// a is stored (batch..., M, K), or (batch..., K, M) when trans_a; b is (batch..., K, N), or
// (batch..., N, K) when trans_b. a or b may be rank 2 (one matrix shared by every batch entry).
// With beta = 1 the product accumulates into c, which is how attention's backward uses it.
template <Scalar T>
void batched_matmul(CpuView<T> c, const CpuView<T>& a, const CpuView<T>& b, bool trans_a = false,
                    bool trans_b = false, std::type_identity_t<T> alpha = T(1),
                    std::type_identity_t<T> beta = T(0)) {
  const auto dims = check::batched_matmul(c, a, b, trans_a, trans_b);
  const std::size_t batch = dims.batch, M = dims.m, Nc = dims.n, K = dims.k;
  if (c.numel() == 0) return;
  using backend::cpu_blas::blas_int;
  const int m = blas_int(M, "batched_matmul"), n = blas_int(Nc, "batched_matmul"),
            k = blas_int(K, "batched_matmul");
  const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
  const std::size_t a_stride = a.rank() == 2 ? 0 : M * K, b_stride = b.rank() == 2 ? 0 : K * Nc;
  auto one = [&](std::size_t i) {
    T* ci = c.data() + i * M * Nc;
    if (K == 0) {
      for (std::size_t j = 0; j < M * Nc; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
      return;
    }
    backend::cpu_blas::gemm(trans_a, trans_b, m, n, k, alpha, a.data() + i * a_stride, lda,
                            b.data() + i * b_stride, ldb, beta, ci, n);
  };
  // Small products (attention heads at short T) run one per OpenMP thread; OpenBLAS runs those on the
  // calling thread anyway (below its own threading threshold, M·N·K < 4·65536). Large ones go one at
  // a time and OpenBLAS threads each.
  const bool small = M * Nc * K <= 4 * 65536;
  if (small && batch > 1) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < batch; ++i) one(i);
  } else {
    for (std::size_t i = 0; i < batch; ++i) one(i);
  }
}

}  // namespace p4lm::ops
