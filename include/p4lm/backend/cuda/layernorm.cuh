#pragma once
// LayerNorm and its backward on CUDA (ops/layernorm.hpp has the CPU versions and the semantics).
//
// Forward: one warp per row; two passes over the row (mean of x - x[0], then Σ (x - mean)²), the second
// from L1/L2.
// Backward: dx with one warp per row; dweight and dbias as deterministic column sums (fixed chunks of
// rows, fixed order), so repeated runs give identical bits.

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {

inline constexpr unsigned rows_per_block = 8;  // warps per block in the row kernels (256 threads)

template <class T>  // T = float; a template so the header can define the kernel in many TUs
__global__ void layernorm_forward_kernel(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b,
                                         std::size_t rows, std::size_t c, float eps) {
  const std::size_t row = blockIdx.x * std::size_t(rows_per_block) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;
  const float* xr = x + row * c;
  // The mean of x - x[0] (then shifted back): partial sums stay small when |mean| >> std.
  const float shift = xr[0];
  float s = 0;
  for (std::size_t i = lane; i < c; i += 32) s += xr[i] - shift;
  const float m = shift + warp_sum(s) / float(c);
  float v = 0;
  for (std::size_t i = lane; i < c; i += 32) {
    const float d = xr[i] - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / float(c) + eps);
  float* orow = out + row * c;  // may alias xr: each lane writes only what it just read
  for (std::size_t i = lane; i < c; i += 32) orow[i] = (xr[i] - m) * r * w[i] + b[i];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <class T>
__global__ void layernorm_backward_dx_kernel(T* dx, const T* dout, const T* x, const T* w, const T* mean,
                                             const T* rstd, std::size_t rows, std::size_t c) {
  const std::size_t row = blockIdx.x * std::size_t(rows_per_block) + (threadIdx.x >> 5);
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;
  const float* xr = x + row * c;
  const float* dr = dout + row * c;
  const float m = mean[row], s = rstd[row];
  float sum_dn = 0, sum_dn_xhat = 0;
  for (std::size_t i = lane; i < c; i += 32) {
    const float dn = dr[i] * w[i];
    sum_dn += dn;
    sum_dn_xhat += dn * (xr[i] - m) * s;
  }
  const float mean_dn = warp_sum(sum_dn) / float(c), mean_dn_xhat = warp_sum(sum_dn_xhat) / float(c);
  float* dxr = dx + row * c;
  for (std::size_t i = lane; i < c; i += 32) {
    const float xhat = (xr[i] - m) * s;
    dxr[i] += s * (dr[i] * w[i] - mean_dn - xhat * mean_dn_xhat);
  }
}

struct DoutTimesXhat {  // dweight terms: dout[r, c] · (x[r, c] - mean[r]) · rstd[r]
  const float* dout;
  const float* x;
  const float* mean;
  const float* rstd;
  std::size_t cols;
  __device__ float operator()(std::size_t r, std::size_t c) const {
    return dout[r * cols + c] * ((x[r * cols + c] - mean[r]) * rstd[r]);
  }
};

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// x (..., C), weight (C), bias (C) -> out (..., C) (may alias x); mean, rstd: one element per row
inline void layernorm_forward(CudaView out, CudaView mean, CudaView rstd, const CudaView& x,
                              const CudaView& weight, const CudaView& bias, float eps = 1e-5f) {
  const std::size_t c = check::layernorm_forward(out, mean, rstd, x, weight, bias);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  using cuda::detail::rows_per_block;
  cuda::detail::layernorm_forward_kernel<float><<<cuda::detail::grid_for(rows, rows_per_block, ~0u >> 1),
                                                  32 * rows_per_block, 0, cuda::current_context().stream()>>>(
      out.data(), mean.data(), rstd.data(), x.data(), weight.data(), bias.data(), rows, c, eps);
  P4LM_CUDA_CHECK_LAUNCH(layernorm_forward_kernel);
}

// Accumulates dx += (d out/d x)·dout, dweight += Σ_rows dout · xhat, dbias += Σ_rows dout.
// dout, x (..., C); weight (C); mean, rstd from layernorm_forward. dx must not alias dout.
inline void layernorm_backward(CudaView dx, CudaView dweight, CudaView dbias, const CudaView& dout,
                               const CudaView& x, const CudaView& weight, const CudaView& mean,
                               const CudaView& rstd) {
  const std::size_t c = check::layernorm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd);
  const std::size_t rows = x.shape().rows();
  if (c == 0 || rows == 0) return;
  auto& ctx = cuda::current_context();
  using cuda::detail::rows_per_block;
  cuda::detail::layernorm_backward_dx_kernel<float>
      <<<cuda::detail::grid_for(rows, rows_per_block, ~0u >> 1), 32 * rows_per_block, 0, ctx.stream()>>>(
          dx.data(), dout.data(), x.data(), weight.data(), mean.data(), rstd.data(), rows, c);
  P4LM_CUDA_CHECK_LAUNCH(layernorm_backward_dx_kernel);
  auto* partial =
      static_cast<float*>(ctx.workspace(cuda::detail::column_sum_floats(rows, c) * sizeof(float)));
  cuda::detail::column_sums(dweight.data(), partial, rows, c,
                            cuda::detail::DoutTimesXhat{dout.data(), x.data(), mean.data(), rstd.data(), c});
  cuda::detail::column_sums(dbias.data(), partial, rows, c, cuda::detail::RowsOf{dout.data(), c});
}

}  // namespace p4lm::ops
