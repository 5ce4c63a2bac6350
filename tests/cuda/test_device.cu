#include <catch2/catch.hpp>

#include <p4lm/cuda.hpp>

#include "skip.hpp"

TEST_CASE("CUDA device is usable or the test is reported skipped", "[cuda]") {
  if (p4lm::cuda::device_count() == 0) P4LM_SKIP("no CUDA device");
  int* buffer = nullptr;
  P4LM_CUDA_CHECK(cudaMalloc(&buffer, sizeof(int)));
  P4LM_CUDA_CHECK(cudaMemset(buffer, 0x7f, sizeof(int)));
  int host = 0;
  P4LM_CUDA_CHECK(cudaMemcpy(&host, buffer, sizeof(int), cudaMemcpyDeviceToHost));
  P4LM_CUDA_CHECK(cudaFree(buffer));
  CHECK(host == 0x7f7f7f7f);
  CHECK_THROWS_AS(P4LM_CUDA_CHECK(cudaMemcpy(&host, nullptr, 1 << 30, cudaMemcpyDeviceToHost)),
                  p4lm::BackendError);
}

TEST_CASE("P4LM_CUDA_CHECK turns a failure into BackendError naming the call", "[cuda][errors]") {
  // Runs with or without a device: statuses are checked, and cudaSetDevice(-1) fails everywhere.
  CHECK_NOTHROW(P4LM_CUDA_CHECK(cudaSuccess));
  CHECK_NOTHROW(P4LM_CUDA_CHECK(CUBLAS_STATUS_SUCCESS));
  CHECK_THROWS_AS(P4LM_CUDA_CHECK(cudaErrorInvalidValue), p4lm::BackendError);
  CHECK_THROWS_WITH(P4LM_CUDA_CHECK(cudaErrorInvalidValue),
                    Catch::Contains("test_device.cu:") && Catch::Contains("cudaErrorInvalidValue failed") &&
                        Catch::Contains("invalid argument"));
  CHECK_THROWS_WITH(
      P4LM_CUDA_CHECK(CUBLAS_STATUS_NOT_INITIALIZED),
      Catch::Contains("CUBLAS_STATUS_NOT_INITIALIZED failed") && Catch::Contains("cuBLAS status 1"));
  CHECK_THROWS_WITH(P4LM_CUDA_CHECK(cudaSetDevice(-1)), Catch::Contains("cudaSetDevice(-1) failed"));
  (void)cudaGetLastError();
  try {
    P4LM_CUDA_CHECK(cudaErrorMemoryAllocation);
  } catch (const p4lm::Error& e) {  // a BackendError is a p4lm::Error
    CHECK(std::string(e.what()).find("cudaErrorMemoryAllocation") != std::string::npos);
  }
}

TEST_CASE("device_count: no GPU is 0, a failing query is an error", "[cuda][errors]") {
  // Where the query succeeds or finds no device, device_count() agrees with the runtime; where the
  // driver is installed but the query fails (too old, broken), it throws instead of returning 0.
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (status == cudaSuccess) {
    CHECK(p4lm::cuda::device_count() == count);
  } else if (status == cudaErrorNoDevice ||
             (status == cudaErrorInsufficientDriver && !p4lm::cuda::driver_installed())) {
    CHECK(p4lm::cuda::device_count() == 0);
  } else {
    CHECK_THROWS_WITH(p4lm::cuda::device_count(), Catch::Contains("cudaGetDeviceCount"));
  }
}
