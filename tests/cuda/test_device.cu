#include <catch2/catch.hpp>

#include <p4lm/cuda.hpp>

TEST_CASE("CUDA device is usable or the suite says it is skipped", "[cuda]") {
  if (p4lm::cuda::device_count() == 0) {
    WARN("skipped: no CUDA device");
    return;
  }
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
  CHECK_THROWS_WITH(P4LM_CUDA_CHECK(CUBLAS_STATUS_NOT_INITIALIZED),
                    Catch::Contains("CUBLAS_STATUS_NOT_INITIALIZED failed") && Catch::Contains("cuBLAS status 1"));
  CHECK_THROWS_WITH(P4LM_CUDA_CHECK(cudaSetDevice(-1)), Catch::Contains("cudaSetDevice(-1) failed"));
  (void)cudaGetLastError();
  try {
    P4LM_CUDA_CHECK(cudaErrorMemoryAllocation);
  } catch (const p4lm::Error& e) {  // a BackendError is a p4lm::Error
    CHECK(std::string(e.what()).find("cudaErrorMemoryAllocation") != std::string::npos);
  }
}
