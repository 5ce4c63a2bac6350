#pragma once
// Matrix products on CUDA through cuBLAS (ops/matmul.hpp has the CPU versions and the semantics).
//
// cuBLAS is column-major; a row-major (r, c) matrix is the column-major (c, r) matrix with the same
// memory, its transpose. So a row-major C = A·B is computed as the column-major Cᵀ = Bᵀ·Aᵀ: the
// operands swap places and every leading dimension is the row length of the row-major matrix.

#include <cstddef>
#include <type_traits>

#include <cublas_v2.h>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
struct BroadcastRows {  // out[r, j] = bias[j]
  float* out;
  const float* bias;
  std::size_t cols;
  __device__ void operator()(std::size_t i) const { out[i] = bias[i % cols]; }
};
struct ScaleOrZero {  // c = beta == 0 ? 0 : beta · c (a product with K = 0)
  float* c;
  float beta;
  __device__ void operator()(std::size_t i) const { c[i] = beta == 0.0f ? 0.0f : beta * c[i]; }
};
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// inp (..., C), weight (OC, C), bias (OC) or {} -> out (..., OC) = inp · weightᵀ + bias
inline void matmul_forward(CudaView out, const CudaView& inp, const CudaView& weight,
                           const CudaView& bias = {}) {
  const auto dims = check::matmul_forward(out, inp, weight, bias);
  const std::size_t C = dims.in, OC = dims.out, N = dims.rows;
  const bool has_bias = is_given(bias);
  if (N == 0 || OC == 0) return;
  // The bias goes into out first and the GEMM accumulates onto it (beta = 1): no second pass.
  if (has_bias)
    cuda::detail::for_each_index("matmul_forward", N * OC,
                                 cuda::detail::BroadcastRows{out.data(), bias.data(), OC});
  if (C == 0) {
    if (!has_bias) cuda::detail::fill(out.data(), N * OC, 0.0f);
    return;
  }
  const int n = cuda::detail::to_int(N, "matmul_forward"), oc = cuda::detail::to_int(OC, "matmul_forward"),
            c = cuda::detail::to_int(C, "matmul_forward");
  const float one = 1.0f, beta = has_bias ? 1.0f : 0.0f;
  // outᵀ (OC x N) = weight (OC x C, stored as its transpose) · inpᵀ (C x N)
  P4LM_CUDA_CHECK(cublasSgemm(cuda::current_context().blas(), CUBLAS_OP_T, CUBLAS_OP_N, oc, n, c, &one,
                              weight.data(), c, inp.data(), c, &beta, out.data(), oc));
}

// dout (..., OC), inp (..., C), weight (OC, C)
//   -> dinp (..., C) += dout · weight,  dweight (OC, C) += doutᵀ · inp,  dbias (OC) += Σ_rows dout
// Each gradient is optional ({}). dbias is summed deterministically (fixed chunks, fixed order).
inline void matmul_backward(CudaView dinp, CudaView dweight, CudaView dbias, const CudaView& dout,
                            const CudaView& inp, const CudaView& weight) {
  const auto dims = check::matmul_backward(dinp, dweight, dbias, dout, inp, weight);
  const std::size_t C = dims.in, OC = dims.out, N = dims.rows;
  const bool gi = is_given(dinp), gw = is_given(dweight), gb = is_given(dbias);
  if (N == 0 || OC == 0) return;
  auto& ctx = cuda::current_context();
  const int n = cuda::detail::to_int(N, "matmul_backward"), oc = cuda::detail::to_int(OC, "matmul_backward"),
            c = cuda::detail::to_int(C, "matmul_backward");
  const float one = 1.0f;
  // dinpᵀ (C x N) += weightᵀ (C x OC) · doutᵀ (OC x N)
  if (C > 0 && gi)
    P4LM_CUDA_CHECK(cublasSgemm(ctx.blas(), CUBLAS_OP_N, CUBLAS_OP_N, c, n, oc, &one, weight.data(), c,
                                dout.data(), oc, &one, dinp.data(), c));
  // dweightᵀ (C x OC) += inpᵀ (C x N) · dout (N x OC)
  if (C > 0 && gw)
    P4LM_CUDA_CHECK(cublasSgemm(ctx.blas(), CUBLAS_OP_N, CUBLAS_OP_T, c, oc, n, &one, inp.data(), c,
                                dout.data(), oc, &one, dweight.data(), c));
  if (gb) {
    auto* partial =
        static_cast<float*>(ctx.workspace(cuda::detail::column_sum_floats(N, OC) * sizeof(float)));
    cuda::detail::column_sums(dbias.data(), partial, N, OC, cuda::detail::RowsOf{dout.data(), OC});
  }
}

// c (batch..., M, N) = alpha · op(a) · op(b) + beta · c, op(a) (M, K), op(b) (K, N); a is stored
// (batch..., M, K) or (batch..., K, M) when trans_a; b (batch..., K, N) or (batch..., N, K) when trans_b;
// a or b may be rank 2 (shared by every batch entry: stride 0). One cublasSgemmStridedBatched call.
inline void batched_matmul(CudaView c, const CudaView& a, const CudaView& b, bool trans_a = false,
                           bool trans_b = false, float alpha = 1.0f, float beta = 0.0f) {
  const auto dims = check::batched_matmul(c, a, b, trans_a, trans_b);
  const std::size_t batch = dims.batch, M = dims.m, Nc = dims.n, K = dims.k;
  if (c.numel() == 0) return;
  if (K == 0) {
    cuda::detail::for_each_index("batched_matmul", c.numel(), cuda::detail::ScaleOrZero{c.data(), beta});
    return;
  }
  const int m = cuda::detail::to_int(M, "batched_matmul"), n = cuda::detail::to_int(Nc, "batched_matmul"),
            k = cuda::detail::to_int(K, "batched_matmul"),
            count = cuda::detail::to_int(batch, "batched_matmul");
  const long long a_stride = a.rank() == 2 ? 0 : static_cast<long long>(M * K);
  const long long b_stride = b.rank() == 2 ? 0 : static_cast<long long>(K * Nc);
  // cᵀ (N x M) = op(b)ᵀ (N x K) · op(a)ᵀ (K x M)
  P4LM_CUDA_CHECK(cublasSgemmStridedBatched(
      cuda::current_context().blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b.data(), trans_b ? k : n, b_stride, a.data(),
      trans_a ? m : k, a_stride, &beta, c.data(), n, static_cast<long long>(M * Nc), count));
}

}  // namespace p4lm::ops
