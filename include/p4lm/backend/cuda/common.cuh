#pragma once
// Internals shared by the CUDA ops (do not include directly): view aliases, the 32-bit size check, warp and
// block reductions, deterministic reductions (fixed grids and fixed trees, so a result depends only on
// the shapes, never on timing or on the GPU model), DeviceScalar, and thrust's for_each over indices.
//
// Helpers live in p4lm::cuda::detail, not p4lm::ops::detail, so a translation unit may include the CPU
// ops and the CUDA ops together without redefinitions.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include <cuda_runtime.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/system/cuda/execution_policy.h>
#include <thrust/system_error.h>

#include "p4lm/backend/cuda/context.cuh"
#include "p4lm/backend/cuda/device.cuh"
#include "p4lm/backend/cuda/tensor.cuh"
#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/shape_check.hpp"
#include "p4lm/core/tensor_view.hpp"
#include "p4lm/ops/shape_checks.hpp"  // the shape checks, shared with the CPU ops

namespace p4lm::ops {
using CudaView = TensorView<backend::cuda, float>;
using CudaIds = TensorView<backend::cuda, std::int32_t>;
}  // namespace p4lm::ops

namespace p4lm::cuda {

// A value computed on the device (a mean loss, a gradient norm) that stays there until asked for:
// get(), or the implicit conversion, copies it to the host and synchronizes; keeping it as a
// DeviceScalar keeps the step free of host round trips. The storage comes from the stream-ordered
// allocator of the stream current at construction (no synchronization to allocate or free).
template <class T>
class DeviceScalar {
 public:
  DeviceScalar() : stream_(current_context().stream()) {
    P4LM_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(T), stream_));
    P4LM_CUDA_CHECK(cudaMemsetAsync(p_, 0, sizeof(T), stream_));
  }
  DeviceScalar(DeviceScalar&& other) noexcept
      : p_(std::exchange(other.p_, nullptr)), stream_(other.stream_) {}
  DeviceScalar& operator=(DeviceScalar&& other) noexcept {
    if (this != &other) {
      release();
      p_ = std::exchange(other.p_, nullptr);
      stream_ = other.stream_;
    }
    return *this;
  }
  DeviceScalar(const DeviceScalar&) = delete;
  DeviceScalar& operator=(const DeviceScalar&) = delete;
  ~DeviceScalar() { release(); }

  T* data() const noexcept { return p_; }
  // Waits for the stream that computes the value, then returns it.
  T get() const {
    T host{};
    P4LM_CUDA_CHECK(cudaMemcpyAsync(&host, p_, sizeof(T), cudaMemcpyDeviceToHost, stream_));
    P4LM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    current_context().check_device_error();
    return host;
  }
  operator T() const { return get(); }  // NOLINT: `float loss = ops::...(...)` works on both backends

 private:
  void release() noexcept {
    if (p_) (void)cudaFreeAsync(p_, stream_);
    p_ = nullptr;
  }
  T* p_ = nullptr;
  cudaStream_t stream_;
};

namespace detail {

inline int to_int(std::size_t v, const char* op) {
  if (v > 0x7fffffffu) fail<InvalidArgument>(op, ": dimension ", v, " exceeds the 32-bit range cuBLAS takes");
  return static_cast<int>(v);
}

// f(i) for every i in [0, n), queued on the current stream (thrust, without its synchronization).
template <class F>
void for_each_index(const char* op, std::size_t n, F f) {
  if (n == 0) return;
  try {
    thrust::for_each_n(thrust::cuda::par_nosync.on(current_context().stream()),
                       thrust::counting_iterator<std::size_t>(0), n, f);
  } catch (const thrust::system_error& e) {
    fail<BackendError>(op, ": thrust::for_each_n failed: ", e.what());
  }
}

// ---- reductions inside a kernel (xor butterflies: a fixed order, so deterministic) ----
template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ inline T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `shared` holds 32 values; the leading barrier lets consecutive calls reuse it.
template <class T>
__device__ inline T block_sum(T v, T* shared) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < (blockDim.x >> 5) ? shared[lane] : T(0);
    w = warp_sum(w);
    if (lane == 0) shared[0] = w;
  }
  __syncthreads();
  return shared[0];
}
__device__ inline float block_max(float v, float* shared) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < (blockDim.x >> 5) ? shared[lane] : -INFINITY;
    w = warp_max(w);
    if (lane == 0) shared[0] = w;
  }
  __syncthreads();
  return shared[0];
}

// ---- deterministic sum of f(i) over [0, n), in double ----
// Stage 1: `blocks` partial sums (a function of n only); stage 2: one block adds them in a fixed tree.
inline constexpr unsigned sum_threads = 256;
inline unsigned sum_blocks(std::size_t n) {
  const std::size_t b = (n + sum_threads * 8 - 1) / (sum_threads * 8);
  return static_cast<unsigned>(b < 1 ? 1 : (b > 512 ? 512 : b));
}
template <class F>
__global__ void partial_sum_kernel(double* partial, std::size_t n, F f) {
  __shared__ double shared[32];
  double acc = 0;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    acc += f(i);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}
// out = finish(Σ partial[0..count)), finish a device functor on the double total.
template <class Out, class Finish>
__global__ void final_sum_kernel(Out* out, const double* partial, std::size_t count, Finish finish) {
  __shared__ double shared[32];
  double acc = 0;
  for (std::size_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *out = finish(acc);
}
// Queues stage 1 for f over [0, n) into partial (which must hold sum_blocks(n) doubles).
template <class F>
void queue_partial_sum(double* partial, std::size_t n, F f) {
  partial_sum_kernel<<<sum_blocks(n), sum_threads, 0, current_context().stream()>>>(partial, n, f);
  P4LM_CUDA_CHECK_LAUNCH(partial_sum_kernel);
}
template <class Out, class Finish>
void queue_final_sum(Out* out, const double* partial, std::size_t count, Finish finish) {
  final_sum_kernel<<<1, 1024, 0, current_context().stream()>>>(out, partial, count, finish);
  P4LM_CUDA_CHECK_LAUNCH(final_sum_kernel);
}
// mean = total / n, as the given type.
template <class T>
struct MeanOf {
  double n;
  __device__ T operator()(double total) const { return n > 0 ? T(total / n) : T(0); }
};

// ---- deterministic column sums: out[c] += Σ_r f(r, c) for a (rows, cols) problem ----
// Stage 1: 32-column tiles x row chunks (the chunking is a function of the shape), each chunk summed by
// 8 row-strided threads and a fixed tree; stage 2 adds the chunks of each column in order.
inline constexpr unsigned col_tile = 32, col_rows = 8;
struct ColumnPlan {
  std::size_t chunks, rows_per_chunk;
};
inline ColumnPlan column_plan(std::size_t rows, std::size_t cols) {
  const std::size_t tiles = (cols + col_tile - 1) / col_tile;
  std::size_t chunks = (512 + tiles - 1) / tiles;   // aim at ~512 blocks
  const std::size_t max_chunks = (rows + 31) / 32;  // at least 32 rows a chunk
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks > 1024) chunks = 1024;
  if (chunks < 1) chunks = 1;
  const std::size_t per = (rows + chunks - 1) / chunks;
  return {per ? (rows + per - 1) / per : 1, per ? per : 1};
}
template <class F>
__global__ void column_partial_kernel(float* partial, std::size_t rows, std::size_t cols, std::size_t per,
                                      F f) {
  __shared__ float tile[col_rows][col_tile + 1];
  const std::size_t c = blockIdx.x * std::size_t(col_tile) + threadIdx.x;
  const std::size_t r0 = blockIdx.y * per, r1 = r0 + per < rows ? r0 + per : rows;
  float acc = 0;
  if (c < cols)
    for (std::size_t r = r0 + threadIdx.y; r < r1; r += col_rows) acc += f(r, c);
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float s = tile[0][threadIdx.x];
    for (unsigned k = 1; k < col_rows; ++k) s += tile[k][threadIdx.x];
    partial[blockIdx.y * cols + c] = s;
  }
}
template <class T>
__global__ void column_finish_kernel(T* out, const T* partial, std::size_t chunks, std::size_t cols) {
  const std::size_t c = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  T s = 0;
  for (std::size_t k = 0; k < chunks; ++k) s += partial[k * cols + c];
  out[c] += s;
}
struct RowsOf {  // f(r, c) = x[r, c]: column sums of a row-major matrix
  const float* x;
  std::size_t cols;
  __device__ float operator()(std::size_t r, std::size_t c) const { return x[r * cols + c]; }
};
// Workspace floats column_sums needs for this shape.
inline std::size_t column_sum_floats(std::size_t rows, std::size_t cols) {
  return column_plan(rows, cols).chunks * cols;
}
// `partial` must hold column_sum_floats(rows, cols) floats.
template <class F>
void column_sums(float* out, float* partial, std::size_t rows, std::size_t cols, F f) {
  if (rows == 0 || cols == 0) return;
  const ColumnPlan plan = column_plan(rows, cols);
  cudaStream_t s = current_context().stream();
  const dim3 grid(static_cast<unsigned>((cols + col_tile - 1) / col_tile),
                  static_cast<unsigned>(plan.chunks));
  column_partial_kernel<<<grid, dim3(col_tile, col_rows), 0, s>>>(partial, rows, cols, plan.rows_per_chunk,
                                                                  f);
  P4LM_CUDA_CHECK_LAUNCH(column_partial_kernel);
  column_finish_kernel<float><<<grid_for(cols, 256), 256, 0, s>>>(out, partial, plan.chunks, cols);
  P4LM_CUDA_CHECK_LAUNCH(column_finish_kernel);
}

}  // namespace detail
}  // namespace p4lm::cuda
