#pragma once
// CUDA runtime and cuBLAS status checks that turn failures into p4lm::BackendError naming the call,
// and device discovery: tests skip (reported as skipped by ctest) only where there is no GPU; a
// device query that fails otherwise is an error.

#include <dlfcn.h>

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

// Whether the CUDA driver library is installed at all (the runtime reports its absence as
// cudaErrorInsufficientDriver, the same code as a driver too old for this toolkit).
inline bool driver_installed() {
  void* driver = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver == nullptr) return false;
  ::dlclose(driver);
  return true;
}

// Number of usable CUDA devices. 0 where there is no GPU: no device (cudaErrorNoDevice) or no driver
// installed (a machine without a GPU). Any other failure of the query, such as a driver too old for
// the toolkit or a broken installation, is a BackendError: a machine that has a GPU but cannot use it
// must fail its CUDA tests, not pass them as skipped.
inline int device_count() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess) return count;
  (void)cudaGetLastError();  // clear the sticky error
  if (status == cudaErrorNoDevice) return 0;
  if (status == cudaErrorInsufficientDriver && !driver_installed()) return 0;
  check(status, "cudaGetDeviceCount(&count)", __FILE__, __LINE__);
  return 0;
}

}  // namespace p4lm::cuda

#define P4LM_CUDA_CHECK(call) ::p4lm::cuda::check((call), #call, __FILE__, __LINE__)
