#pragma once
// Log-probabilities of chosen tokens on CUDA (ops/logprob_gather.hpp): one block per row of logits.
// Ids are checked on the device like softmax_cross_entropy's targets (an invalid id is recorded and
// its row treated as ignored).

#include <cstddef>
#include <cstdint>

#include "p4lm/backend/cuda/common.cuh"
#include "p4lm/backend/cuda/softmax_cross_entropy.cuh"  // row_threads, checked_target

namespace p4lm::cuda::detail {

// Block-wide max and log Σ exp(x - max) of one row (every thread gets both); lse = max + log_sum.
struct RowLse {
  float max, log_sum;
};
__device__ inline RowLse row_logsumexp(const float* x, std::size_t V, float* shared) {
  float m = -INFINITY;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, shared);
  float s = 0;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(x[j] - m);
  return {m, logf(block_sum(s, shared))};
}

template <class T>
__global__ void logprob_forward_kernel(T* logprobs, T* lse, T* entropy, const T* logits,
                                       const std::int32_t* ids, std::size_t V, std::int32_t ignore,
                                       DeviceError* err, const char* what) {
  __shared__ float shared[32];
  const std::size_t r = blockIdx.x;
  const T* x = logits + r * V;
  const long long id = checked_target(ids[r], ignore, V, r, err, what);
  const RowLse row = row_logsumexp(x, V, shared);
  const float l = row.max + row.log_sum;
  if (threadIdx.x == 0) {
    // (x - max) first, as on the CPU: exact for nearby values, so large logits keep float precision.
    logprobs[r] = id >= 0 ? (x[id] - row.max) - row.log_sum : 0.0f;
    if (lse) lse[r] = l;
  }
  if (entropy) {  // H = Σ p (lse - x)
    float h = 0;
    for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) h += expf(x[j] - l) * (l - x[j]);
    h = block_sum(h, shared);
    if (threadIdx.x == 0) entropy[r] = h;
  }
}

template <class T>
__global__ void logprob_backward_kernel(T* dlogits, const T* dlogprobs, const T* logits,
                                        const std::int32_t* ids, const T* lse, std::size_t V,
                                        std::int32_t ignore, DeviceError* err, const char* what) {
  __shared__ float shared[32];
  const std::size_t r = blockIdx.x;
  const long long id = checked_target(ids[r], ignore, V, r, err, what);
  if (id < 0) return;
  const T* x = logits + r * V;
  float l;
  if (lse) {
    l = lse[r];
  } else {
    const RowLse row = row_logsumexp(x, V, shared);
    l = row.max + row.log_sum;
  }
  const float g = dlogprobs[r];
  T* d = dlogits + r * V;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) {
    float v = d[j] - g * expf(x[j] - l);
    if (j == static_cast<std::size_t>(id)) v += g;
    d[j] = v;
  }
}

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// logits (..., V), ids (...) in [0, V) or ignore_index
//   -> logprobs (...) (0 on ignored rows), lse (...) if given, entropy (...) if given
inline void logprob_gather_forward(CudaView logprobs, CudaView lse, CudaView entropy, const CudaView& logits,
                                   const CudaIds& ids, std::int32_t ignore_index = -100) {
  namespace d = cuda::detail;
  check::logprob_gather_forward(logprobs, lse, entropy, logits, ids);
  const bool want_lse = is_given(lse), want_entropy = is_given(entropy);
  const std::size_t V = logits.shape().last(), N = ids.numel();
  if (N == 0 || V == 0) return;
  auto& ctx = cuda::current_context();
  d::logprob_forward_kernel<float><<<static_cast<unsigned>(N), d::row_threads, 0, ctx.stream()>>>(
      logprobs.data(), want_lse ? lse.data() : nullptr, want_entropy ? entropy.data() : nullptr,
      logits.data(), ids.data(), V, ignore_index, ctx.device_error(), "logprob_gather_forward: ids");
  P4LM_CUDA_CHECK_LAUNCH(logprob_forward_kernel);
}

// dlogprobs (...), logits (..., V), ids (...), lse (...) from forward or {} (then recomputed)
//   -> dlogits (..., V) += dlogprob[r] · (onehot(id[r]) - softmax(logits[r])); ignored rows get nothing
inline void logprob_gather_backward(CudaView dlogits, const CudaView& dlogprobs, const CudaView& logits,
                                    const CudaIds& ids, const CudaView& lse = {},
                                    std::int32_t ignore_index = -100) {
  namespace d = cuda::detail;
  check::logprob_gather_backward(dlogits, dlogprobs, logits, ids, lse);
  const bool have_lse = is_given(lse);
  const std::size_t V = logits.shape().last(), N = ids.numel();
  if (N == 0 || V == 0) return;
  auto& ctx = cuda::current_context();
  d::logprob_backward_kernel<float><<<static_cast<unsigned>(N), d::row_threads, 0, ctx.stream()>>>(
      dlogits.data(), dlogprobs.data(), logits.data(), ids.data(), have_lse ? lse.data() : nullptr, V,
      ignore_index, ctx.device_error(), "logprob_gather_backward: ids");
  P4LM_CUDA_CHECK_LAUNCH(logprob_backward_kernel);
}

}  // namespace p4lm::ops
