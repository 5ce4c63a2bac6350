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
  CHECK_THROWS_AS(P4LM_CUDA_CHECK(cudaMemcpy(&host, nullptr, 1 << 30, cudaMemcpyDeviceToHost)), p4lm::BackendError);
}
