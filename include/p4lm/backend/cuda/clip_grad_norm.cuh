#pragma once
// Global gradient norm and clipping on CUDA (ops/clip_grad_norm.hpp). The norm is summed in double in a
// fixed order (per-tensor partial sums, then one block over all of them), stays on the device, and the
// scaling kernels read it there: no host round trip. The result is a cuda::DeviceScalar<double>;
// converting it to double synchronizes (as PyTorch's .item() would).

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
struct SquareOf {
  const float* x;
  __device__ double operator()(std::size_t i) const {
    const double v = x[i];
    return v * v;
  }
};
struct SqrtOf {
  __device__ double operator()(double total) const { return sqrt(total); }
};
struct ScaleByNorm {  // x *= max_norm / (norm + 1e-6) when the norm is finite and exceeds max_norm
  float* x;
  const double* norm;
  double max_norm;
  __device__ void operator()(std::size_t i) const {
    const double n = *norm;
    if (!isfinite(n) || n <= max_norm) return;
    x[i] *= static_cast<float>(max_norm / (n + 1e-6));
  }
};

inline void queue_global_norm(double* out, std::span<const ops::CudaView> grads) {
  std::size_t blocks = 0;
  for (const auto& g : grads)
    if (g.numel()) blocks += sum_blocks(g.numel());
  auto* partial = static_cast<double*>(current_context().workspace(sizeof(double) * (blocks ? blocks : 1)));
  std::size_t offset = 0;
  for (const auto& g : grads) {
    if (!g.numel()) continue;
    queue_partial_sum(partial + offset, g.numel(), SquareOf{g.data()});
    offset += sum_blocks(g.numel());
  }
  queue_final_sum(out, partial, blocks, SqrtOf{});
}
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// grads: any number of tensors -> ‖(all elements)‖₂ on the device
inline cuda::DeviceScalar<double> global_grad_norm(std::span<const CudaView> grads) {
  cuda::DeviceScalar<double> norm;
  cuda::detail::queue_global_norm(norm.data(), grads);
  return norm;
}

// grads as above -> the norm before clipping; when it exceeds max_norm every tensor is scaled in place by
// max_norm / (norm + 1e-6) on the device. A non-finite norm scales nothing.
inline cuda::DeviceScalar<double> clip_grad_norm(std::span<const CudaView> grads, double max_norm) {
  check::clip_max_norm(max_norm);
  cuda::DeviceScalar<double> norm;
  cuda::detail::queue_global_norm(norm.data(), grads);
  for (CudaView g : grads)
    cuda::detail::for_each_index("clip_grad_norm", g.numel(),
                                 cuda::detail::ScaleByNorm{g.data(), norm.data(), max_norm});
  return norm;
}

inline cuda::DeviceScalar<double> global_grad_norm(const std::vector<CudaView>& grads) {
  return global_grad_norm(std::span<const CudaView>(grads));
}
inline cuda::DeviceScalar<double> clip_grad_norm(const std::vector<CudaView>& grads, double max_norm) {
  return clip_grad_norm(std::span<const CudaView>(grads), max_norm);
}

}  // namespace p4lm::ops
