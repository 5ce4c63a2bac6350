#pragma once
// CUDA runtime and cuBLAS status checks that turn failures into p4lm::BackendError naming the call,
// and device discovery (tests and tools skip visibly where no device exists).

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "p4lm/core/error.hpp"

namespace p4lm::cuda {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    fail<BackendError>(file, ':', line, ": ", call, " failed: ", cudaGetErrorName(status), " (",
                       cudaGetErrorString(status), ")");
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail<BackendError>(file, ':', line, ": ", call, " failed: ", cublasGetStatusName(status),
                       " (cuBLAS status ", static_cast<int>(status), ")");
}

// Number of usable CUDA devices; 0 (not an error) when there is no driver or no GPU.
inline int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

}  // namespace p4lm::cuda

#define P4LM_CUDA_CHECK(call) ::p4lm::cuda::check((call), #call, __FILE__, __LINE__)
