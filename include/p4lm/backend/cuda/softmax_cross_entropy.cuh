#pragma once
// Softmax + cross-entropy on CUDA (ops/softmax_cross_entropy.hpp has the semantics). One block per row
// of logits (max, Σ exp, then the outputs); the number of counted targets and the mean loss are
// reduced on the device in a fixed order. The mean comes back as a cuda::DeviceScalar<float>:
// converting it to float synchronizes, keeping it does not.
//
// ignore_index defaults to -100, the CPU's ops::ignore_index_default (PyTorch's value).
//
// A row's loss is (max - logit[target]) + log Σ exp(logit - max), the CPU's order: the difference is
// exact for nearby values, so large logits keep float precision.
//
// Targets live in device memory: a target outside [0, V) that is not ignore_index is recorded and thrown
// as InvalidArgument at the next synchronize (context.cuh); meanwhile its row is treated as ignored.

#include <cstddef>
#include <cstdint>
#include <span>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {

inline constexpr unsigned row_threads = 256;  // one block per row of logits

// -1: ignored; -2: invalid (recorded); else the target.
__device__ inline long long checked_target(std::int32_t t, std::int32_t ignore, std::size_t V,
                                           std::size_t row, DeviceError* err, const char* what) {
  if (t == ignore) return -1;
  if (t < 0 || static_cast<std::size_t>(t) >= V) {
    if (threadIdx.x == 0) report_error(err, what, static_cast<long long>(row), t, static_cast<long long>(V));
    return -2;
  }
  return t;
}

struct CountTargets {  // 1 for each target that counts
  const std::int32_t* t;
  std::int32_t ignore;
  std::size_t V;
  __device__ double operator()(std::size_t i) const {
    return t[i] != ignore && t[i] >= 0 && static_cast<std::size_t>(t[i]) < V ? 1.0 : 0.0;
  }
};
struct Identity {
  __device__ double operator()(double x) const { return x; }
};
struct LossTerm {
  const float* losses;
  __device__ double operator()(std::size_t i) const { return losses[i]; }
};
struct MeanByCount {  // mean = total / count, 0 without targets
  const double* count;
  __device__ float operator()(double total) const {
    return *count > 0 ? static_cast<float>(total / *count) : 0.0f;
  }
};

template <class T>
__global__ void ce_forward_kernel(T* losses, T* probs, const T* logits, const std::int32_t* targets,
                                  std::size_t V, std::int32_t ignore, DeviceError* err, const char* what) {
  __shared__ float shared[32];
  const std::size_t r = blockIdx.x;
  const T* x = logits + r * V;
  T* p = probs ? probs + r * V : nullptr;  // may equal x
  const long long t = checked_target(targets[r], ignore, V, r, err, what);
  const float target_logit = t >= 0 ? x[t] : 0.0f;  // read before p overwrites x
  float m = -INFINITY;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, shared);
  float s = 0;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float e = expf(x[j] - m);
    if (p) p[j] = e;
    s += e;
  }
  s = block_sum(s, shared);
  if (p) {
    const float inv = 1.0f / s;
    for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) p[j] *= inv;
  }
  if (threadIdx.x == 0) losses[r] = t >= 0 ? (m - target_logit) + logf(s) : 0.0f;
}

template <class T>
__global__ void ce_backward_kernel(T* dlogits, const T* probs, const std::int32_t* targets, std::size_t rows,
                                   std::size_t V, float dloss, const double* count, std::int32_t ignore,
                                   DeviceError* err, const char* what) {
  if (*count <= 0) return;
  const float s = dloss / static_cast<float>(*count);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < rows * V;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / V, j = i % V;
    const std::int32_t t = targets[r];
    if (t == ignore) continue;
    if (t < 0 || static_cast<std::size_t>(t) >= V) {
      if (j == 0) report_error(err, what, static_cast<long long>(r), t, static_cast<long long>(V));
      continue;
    }
    float d = dlogits[i] + s * probs[i];
    if (j == static_cast<std::size_t>(t)) d -= s;
    dlogits[i] = d;
  }
}

template <class T>
__global__ void ce_fused_kernel(T* logits, T* losses, const std::int32_t* targets, std::size_t V, float dloss,
                                const double* count, std::int32_t ignore, DeviceError* err,
                                const char* what) {
  __shared__ float shared[32];
  const std::size_t r = blockIdx.x;
  T* x = logits + r * V;
  const long long t = checked_target(targets[r], ignore, V, r, err, what);
  if (t < 0) {
    for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) x[j] = 0.0f;
    if (threadIdx.x == 0) losses[r] = 0.0f;
    return;
  }
  const float s = *count > 0 ? dloss / static_cast<float>(*count) : 0.0f;
  const float target_logit = x[t];
  float m = -INFINITY;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_max(m, shared);
  float sum = 0;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float e = expf(x[j] - m);
    x[j] = e;
    sum += e;
  }
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) losses[r] = (m - target_logit) + logf(sum);
  const float scale = s / sum;
  for (std::size_t j = threadIdx.x; j < V; j += blockDim.x) {
    float g = x[j] * scale;
    if (j == static_cast<std::size_t>(t)) g -= s;
    x[j] = g;
  }
}

// Workspace layout shared by the three entry points: [count partials][count][loss partials].
struct CeScratch {
  double* count_partial;
  double* count;
  double* loss_partial;
};
inline CeScratch ce_scratch(std::size_t rows) {
  const std::size_t pb = aligned_bytes(sizeof(double) * sum_blocks(rows));
  auto* base = static_cast<char*>(current_context().workspace(2 * pb + aligned_bytes(sizeof(double))));
  return {reinterpret_cast<double*>(base), reinterpret_cast<double*>(base + pb),
          reinterpret_cast<double*>(base + pb + aligned_bytes(sizeof(double)))};
}
inline void queue_count(const CeScratch& w, const ops::CudaIds& targets, std::size_t V, std::int32_t ignore) {
  queue_partial_sum(w.count_partial, targets.numel(), CountTargets{targets.data(), ignore, V});
  queue_final_sum(w.count, w.count_partial, sum_blocks(targets.numel()), Identity{});
}

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// logits (..., V), targets (...) in [0, V) or ignore_index
//   -> losses (...) (0 on ignored rows), probs (..., V) = softmax(logits) if given (may be the logits);
//   returns the mean loss over non-ignored rows (0 when every target is ignored), on the device.
inline cuda::DeviceScalar<float> softmax_cross_entropy_forward(CudaView losses, CudaView probs,
                                                               const CudaView& logits, const CudaIds& targets,
                                                               std::int32_t ignore_index = -100) {
  namespace d = cuda::detail;
  check::softmax_cross_entropy_forward(losses, probs, logits, targets);
  const bool want_probs = is_given(probs);
  const std::size_t V = logits.shape().last(), N = targets.numel();
  cuda::DeviceScalar<float> mean;
  if (N == 0) return mean;
  auto& ctx = cuda::current_context();
  const auto w = d::ce_scratch(N);
  d::queue_count(w, targets, V, ignore_index);
  if (V > 0) {
    d::ce_forward_kernel<float><<<static_cast<unsigned>(N), d::row_threads, 0, ctx.stream()>>>(
        losses.data(), want_probs ? probs.data() : nullptr, logits.data(), targets.data(), V, ignore_index,
        ctx.device_error(), "softmax_cross_entropy_forward: targets");
    P4LM_CUDA_CHECK_LAUNCH(ce_forward_kernel);
  } else {
    cuda::detail::fill(losses.data(), N, 0.0f);
  }
  d::queue_partial_sum(w.loss_partial, N, d::LossTerm{losses.data()});
  d::queue_final_sum(mean.data(), w.loss_partial, d::sum_blocks(N), d::MeanByCount{w.count});
  return mean;
}

// probs (..., V) from forward, targets (...) -> dlogits (..., V) += dloss / count · (probs - onehot(target))
inline void softmax_cross_entropy_backward(CudaView dlogits, const CudaView& probs, const CudaIds& targets,
                                           float dloss = 1.0f, std::int32_t ignore_index = -100) {
  namespace d = cuda::detail;
  check::softmax_cross_entropy_backward(dlogits, probs, targets);
  const std::size_t V = probs.shape().last(), N = targets.numel();
  if (N == 0 || V == 0) return;
  auto& ctx = cuda::current_context();
  const auto w = d::ce_scratch(N);
  d::queue_count(w, targets, V, ignore_index);
  d::ce_backward_kernel<float><<<cuda::detail::grid_for(N * V, 256), 256, 0, ctx.stream()>>>(
      dlogits.data(), probs.data(), targets.data(), N, V, dloss, w.count, ignore_index, ctx.device_error(),
      "softmax_cross_entropy_backward: targets");
  P4LM_CUDA_CHECK_LAUNCH(ce_backward_kernel);
}

// Forward and backward in one pass, in place: logits (..., V) are OVERWRITTEN with
// dloss · d(mean loss)/d(logits) (ignored rows become 0); losses (...) as in forward; returns the mean.
inline cuda::DeviceScalar<float> softmax_cross_entropy_fused(CudaView logits, CudaView losses,
                                                             const CudaIds& targets, float dloss = 1.0f,
                                                             std::int32_t ignore_index = -100) {
  namespace d = cuda::detail;
  check::softmax_cross_entropy_fused(logits, losses, targets);
  const std::size_t V = logits.shape().last(), N = targets.numel();
  cuda::DeviceScalar<float> mean;
  if (N == 0) return mean;
  auto& ctx = cuda::current_context();
  const auto w = d::ce_scratch(N);
  d::queue_count(w, targets, V, ignore_index);
  if (V > 0) {
    d::ce_fused_kernel<float><<<static_cast<unsigned>(N), d::row_threads, 0, ctx.stream()>>>(
        logits.data(), losses.data(), targets.data(), V, dloss, w.count, ignore_index, ctx.device_error(),
        "softmax_cross_entropy_fused: targets");
    P4LM_CUDA_CHECK_LAUNCH(ce_fused_kernel);
  } else {
    cuda::detail::fill(losses.data(), N, 0.0f);
  }
  d::queue_partial_sum(w.loss_partial, N, d::LossTerm{losses.data()});
  d::queue_final_sum(mean.data(), w.loss_partial, d::sum_blocks(N), d::MeanByCount{w.count});
  return mean;
}

}  // namespace p4lm::ops
