#pragma once
// RMSNorm and its backward on CUDA (ops/rmsnorm.hpp): out = x · rstd · weight, rstd = 1/√(mean(x²) + eps).
// One warp per row; dweight is a deterministic column sum (layernorm.cuh explains the scheme).

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"
#include "p4lm/backend/cuda/layernorm.cuh"  // rows_per_block

namespace p4lm::cuda::detail {

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, T* rstd, const T* x, const T* w, std::size_t rows,
                                       std::size_t c, float eps) {
  const std::size_t row = blockIdx.x * std::size_t(rows_per_block) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;
  const float* xr = x + row * c;
  float ss = 0;
  for (std::size_t i = lane; i < c; i += 32) ss += xr[i] * xr[i];
  const float s = 1.0f / sqrtf(warp_sum(ss) / float(c) + eps);
  float* orow = out + row * c;
  for (std::size_t i = lane; i < c; i += 32) orow[i] = xr[i] * s * w[i];
  if (lane == 0) rstd[row] = s;
}

template <class T>
__global__ void rmsnorm_backward_dx_kernel(T* dx, const T* dout, const T* x, const T* w, const T* rstd,
                                           std::size_t rows, std::size_t c) {
  const std::size_t row = blockIdx.x * std::size_t(rows_per_block) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;
  const float* xr = x + row * c;
  const float* dr = dout + row * c;
  const float s = rstd[row];
  float dot = 0;
  for (std::size_t i = lane; i < c; i += 32) dot += dr[i] * w[i] * xr[i];
  const float k = s * s * s * warp_sum(dot) / float(c);
  float* dxr = dx + row * c;
  for (std::size_t i = lane; i < c; i += 32) dxr[i] += s * dr[i] * w[i] - k * xr[i];
}

struct DoutTimesXRstd {  // dweight terms: dout[r, c] · x[r, c] · rstd[r]
  const float* dout;
  const float* x;
  const float* rstd;
  std::size_t cols;
  __device__ float operator()(std::size_t r, std::size_t c) const {
    return dout[r * cols + c] * x[r * cols + c] * rstd[r];
  }
};

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// x (..., C), weight (C) -> out (..., C) (may alias x); rstd: one element per row of x (cached)
inline void rmsnorm_forward(CudaView out, CudaView rstd, const CudaView& x, const CudaView& weight,
                            float eps = 1e-5f) {
  const std::size_t c = check::rmsnorm_forward(out, rstd, x, weight);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  using cuda::detail::rows_per_block;
  cuda::detail::rmsnorm_forward_kernel<float>
      <<<cuda::detail::grid_for(rows, rows_per_block, ~0u >> 1), 32 * rows_per_block, 0,
         cuda::current_context().stream()>>>(out.data(), rstd.data(), x.data(), weight.data(), rows, c, eps);
  P4LM_CUDA_CHECK_LAUNCH(rmsnorm_forward_kernel);
}

// Accumulates dx += (d out/d x)·dout, dweight += Σ_rows dout · x · rstd. dx must not alias dout.
inline void rmsnorm_backward(CudaView dx, CudaView dweight, const CudaView& dout, const CudaView& x,
                             const CudaView& weight, const CudaView& rstd) {
  const std::size_t c = check::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  auto& ctx = cuda::current_context();
  using cuda::detail::rows_per_block;
  cuda::detail::rmsnorm_backward_dx_kernel<float>
      <<<cuda::detail::grid_for(rows, rows_per_block, ~0u >> 1), 32 * rows_per_block, 0, ctx.stream()>>>(
          dx.data(), dout.data(), x.data(), weight.data(), rstd.data(), rows, c);
  P4LM_CUDA_CHECK_LAUNCH(rmsnorm_backward_dx_kernel);
  auto* partial =
      static_cast<float*>(ctx.workspace(cuda::detail::column_sum_floats(rows, c) * sizeof(float)));
  cuda::detail::column_sums(dweight.data(), partial, rows, c,
                            cuda::detail::DoutTimesXRstd{dout.data(), x.data(), rstd.data(), c});
}

}  // namespace p4lm::ops
