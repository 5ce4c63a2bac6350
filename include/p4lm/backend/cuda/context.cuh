#pragma once
// cuda::Context: the stream every CUDA op is queued on, the cuBLAS handle bound to that stream, a
// stream-ordered scratch buffer the ops share, and a device-side error record.
//
// Model: ops keep the CPU signatures (no context argument), so they run on the *current* context:
//   - by default the process-wide default context (created on first use on the current device and
//     deliberately never destroyed, so no CUDA call runs during static destruction);
//   - inside a `cuda::ContextScope scope(ctx);` on this thread, `ctx` (scopes nest, per thread).
// Everything an op does is queued on that one stream: no cudaDeviceSynchronize and no copy to the host
// inside an op, so a training step is one uninterrupted queue. Host code sees results after
// `cuda::synchronize()` or an explicit copy to the host (which synchronizes the stream).
//
// The stream is created with cudaStreamCreate (blocking): it orders with the legacy default stream, so
// a plain cudaMemcpy by the user after an op sees the op's result.
//
// Arguments that live in device memory (token ids, targets) are validated by the kernels: the first bad
// value is recorded on the device and thrown as InvalidArgument at the next synchronize() or host copy
// (the op itself cannot throw without a host round trip). The offending element is skipped.

#include <cstddef>
#include <cstdint>
#include <string>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "p4lm/backend/cuda/device.cuh"
#include "p4lm/core/error.hpp"

namespace p4lm::cuda {

// First device-side argument error of a context. `what` is the address of a host string literal
// naming the op and argument: kernels only copy the pointer value, the host dereferences it.
struct DeviceError {
  unsigned long long what;
  long long position;
  long long value;
  long long limit;
  int set;
};

// Records the first error (later ones are dropped). `what` must be a host string literal passed in from
// host code (a kernel argument or functor member): a literal written in device code has a device address.
__device__ inline void report_error(DeviceError* err, const char* what, long long position, long long value,
                                    long long limit) {
  if (atomicCAS(&err->set, 0, 1) == 0) {
    err->what = reinterpret_cast<unsigned long long>(what);
    err->position = position;
    err->value = value;
    err->limit = limit;
  }
}

class Context {
 public:
  // Creates a stream and a cuBLAS handle on the current device. Throws BackendError without a device.
  Context() {
    P4LM_CUDA_CHECK(cudaGetDevice(&device_));
    P4LM_CUDA_CHECK(cudaStreamCreate(&stream_));
    P4LM_CUDA_CHECK(cublasCreate(&blas_));
    P4LM_CUDA_CHECK(cublasSetStream(blas_, stream_));
    // Full FP32 products (no TF32) unless allow_tf32(true): results then match the CPU to ~1e-6.
    P4LM_CUDA_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    P4LM_CUDA_CHECK(cudaMalloc(&error_, sizeof(DeviceError)));
    P4LM_CUDA_CHECK(cudaMemsetAsync(error_, 0, sizeof(DeviceError), stream_));
  }
  ~Context() {
    // Errors are ignored: a destructor must not throw, and at process exit the runtime may be gone.
    if (workspace_) (void)cudaFreeAsync(workspace_, stream_);
    if (error_) (void)cudaFree(error_);
    if (blas_) (void)cublasDestroy(blas_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const noexcept { return stream_; }
  cublasHandle_t blas() const noexcept { return blas_; }
  int device() const noexcept { return device_; }
  DeviceError* device_error() const noexcept { return error_; }

  // TF32 tensor-core GEMMs: ~2-8x faster products with a 10-bit mantissa. Off by default.
  void allow_tf32(bool on) {
    P4LM_CUDA_CHECK(cublasSetMathMode(blas_, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }

  // Scratch memory for one op at a time, valid until the next workspace() call on this context. It
  // grows only, through the stream-ordered allocator, so growing never synchronizes and the old buffer
  // is released only after the work queued before it. An op asks once for everything it needs.
  void* workspace(std::size_t bytes) {
    if (bytes > workspace_bytes_) {
      if (workspace_) P4LM_CUDA_CHECK(cudaFreeAsync(workspace_, stream_));
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      const std::size_t grown = bytes + bytes / 4;
      P4LM_CUDA_CHECK(cudaMallocAsync(&workspace_, grown, stream_));
      workspace_bytes_ = grown;
    }
    return workspace_;
  }

  // Waits for everything queued on the stream, then throws the first device-side argument error.
  void synchronize() {
    P4LM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_device_error();
  }

  // Reads the error record (synchronously); throws InvalidArgument and clears it when one was set.
  void check_device_error() {
    DeviceError e{};
    P4LM_CUDA_CHECK(cudaMemcpyAsync(&e, error_, sizeof e, cudaMemcpyDeviceToHost, stream_));
    P4LM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (!e.set) return;
    P4LM_CUDA_CHECK(cudaMemsetAsync(error_, 0, sizeof(DeviceError), stream_));
    const char* what = reinterpret_cast<const char*>(e.what);
    fail<InvalidArgument>(what ? what : "cuda op", ": value ", e.value, " at position ", e.position,
                          " is outside [0, ", e.limit, ")");
  }

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceError* error_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
};

namespace detail {
inline Context*& current_override() {
  thread_local Context* ctx = nullptr;
  return ctx;
}
}  // namespace detail

// The process-wide default context (created on first use, never destroyed).
inline Context& default_context() {
  static Context* ctx = new Context();
  return *ctx;
}

// The context ops on this thread run on: the innermost ContextScope's, else the default.
inline Context& current_context() {
  Context* c = detail::current_override();
  return c ? *c : default_context();
}

// Makes `ctx` current on this thread for the scope's lifetime (restores the previous one after).
class ContextScope {
 public:
  explicit ContextScope(Context& ctx) : previous_(detail::current_override()) {
    detail::current_override() = &ctx;
  }
  ~ContextScope() { detail::current_override() = previous_; }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  Context* previous_;
};

// Waits for the current context's stream and reports device-side argument errors.
inline void synchronize() {
  current_context().synchronize();
}

namespace detail {
// Checks a kernel launch (configuration errors; asynchronous faults surface at the next synchronize).
inline void check_launch(const char* kernel, const char* file, int line) {
  check(cudaGetLastError(), kernel, file, line);
}
// Blocks for n elements at `threads` per block, capped: kernels use grid-stride loops beyond that.
inline unsigned grid_for(std::size_t n, unsigned threads, std::size_t cap = 65535u * 8u) {
  std::size_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks);
}
// Bytes rounded up so the next workspace region starts 256-byte aligned.
constexpr std::size_t aligned_bytes(std::size_t bytes) {
  return (bytes + 255) / 256 * 256;
}
}  // namespace detail

}  // namespace p4lm::cuda

#define P4LM_CUDA_CHECK_LAUNCH(kernel) ::p4lm::cuda::detail::check_launch(#kernel, __FILE__, __LINE__)
