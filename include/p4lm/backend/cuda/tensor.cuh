#pragma once
// Tensor<backend::cuda, T>: device memory owned through cudaMalloc/cudaFree, and *is* a
// TensorView<backend::cuda, T> (like the CPU Tensor), so every CUDA op takes whole tensors and
// slices alike. Copies between host and device are explicit:
//
//   CpuTensor<float> h(Shape{2, 3}, 1.0f);
//   auto d = to<backend::cuda>(h);      // or to_cuda(h): upload (queued on the current stream)
//   ops::gelu_forward(d, d);           // the CUDA overload
//   auto back = to<backend::cpu>(d);    // or to_cpu(d): download, synchronizes (needs core/tensor.hpp)
//
// Device-to-device copies, fill and zero are queued on the current context's stream (context.cuh);
// a copy to host memory synchronizes that stream and reports device-side argument errors.

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "p4lm/backend/cuda/context.cuh"
#include "p4lm/backend/cuda/device.cuh"
#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/tensor_view.hpp"

namespace p4lm {

namespace cuda::detail {
template <class T>
__global__ void fill_kernel(T* p, std::size_t n, T value) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = value;
}

template <class T>
void fill(T* p, std::size_t n, T value) {
  if (n == 0) return;
  cudaStream_t s = current_context().stream();
  bool all_zero_bytes = true;
  const auto* bytes = reinterpret_cast<const unsigned char*>(&value);
  for (std::size_t i = 0; i < sizeof(T); ++i) all_zero_bytes = all_zero_bytes && bytes[i] == 0;
  if (all_zero_bytes) {
    P4LM_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(T), s));
    return;
  }
  fill_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(p, n, value);
  P4LM_CUDA_CHECK_LAUNCH(fill_kernel);
}
}  // namespace cuda::detail

template <class T>
class Tensor<backend::cuda, T> : public TensorView<backend::cuda, T> {
  static_assert(std::is_trivially_copyable_v<T>, "CUDA tensors hold trivially copyable elements");
  using Base = TensorView<backend::cuda, T>;

 public:
  Tensor() { this->shape_ = Shape{0}; }
  explicit Tensor(Shape shape) : Tensor() { resize(shape); }
  Tensor(Shape shape, T value) : Tensor() { resize(shape, value); }
  // Upload of a host view (queued; the host memory may be reused when this returns).
  explicit Tensor(const TensorView<backend::cpu, T>& host) : Tensor(host.shape()) {
    if (host.numel())
      P4LM_CUDA_CHECK(cudaMemcpyAsync(this->data_, host.data(), host.numel() * sizeof(T),
                                      cudaMemcpyHostToDevice, cuda::current_context().stream()));
  }
  // Deep copy of any device view.
  explicit Tensor(const Base& view) : Tensor(view.shape()) { copy_from(view); }

  Tensor(const Tensor& other) : Tensor(other.shape()) { copy_from(other); }
  Tensor(Tensor&& other) noexcept : Base(other.data_, other.shape_), capacity_(other.capacity_) {
    other.data_ = nullptr;
    other.shape_ = Shape{0};
    other.capacity_ = 0;
  }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      resize(other.shape());
      copy_from(other);
    }
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      release();
      this->data_ = std::exchange(other.data_, nullptr);
      this->shape_ = std::exchange(other.shape_, Shape{0});
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~Tensor() { release(); }

  // Reallocates only when the element count grows past the capacity (cudaFree + cudaMalloc, which
  // synchronize the device: size workspaces once, outside the training step). Contents are
  // unspecified unless `value` is given.
  void resize(Shape shape) {
    const std::size_t n = shape.numel();
    if (n > capacity_) {
      release();
      P4LM_CUDA_CHECK(cudaMalloc(&this->data_, n * sizeof(T)));
      capacity_ = n;
    }
    this->shape_ = shape;
  }
  void resize(Shape shape, T value) {
    resize(shape);
    fill(value);
  }
  void fill(T value) { cuda::detail::fill(this->data_, this->numel(), value); }
  void zero() { fill(T(0)); }
  std::size_t capacity() const noexcept { return capacity_; }

  const Base& view() const noexcept { return *this; }
  Base view() noexcept { return *this; }
  // Download (synchronizes the current stream).
  std::vector<T> to_vector() const;

 private:
  void copy_from(const Base& src) {
    if (src.numel())
      P4LM_CUDA_CHECK(cudaMemcpyAsync(this->data_, src.data(), src.numel() * sizeof(T),
                                      cudaMemcpyDeviceToDevice, cuda::current_context().stream()));
  }
  void release() noexcept {
    if (this->data_) (void)cudaFree(this->data_);
    this->data_ = nullptr;
    capacity_ = 0;
  }
  std::size_t capacity_ = 0;
};

template <class T = float>
using CudaTensor = Tensor<backend::cuda, T>;

// Device to device (same element count), queued on the current stream.
// Sets every element of a device view to value (queued on the current stream).
template <class T>
void fill(TensorView<backend::cuda, T> dst, T value) {
  cuda::detail::fill(dst.data(), dst.numel(), value);
}

template <class T>
void copy(TensorView<backend::cuda, T> dst, const TensorView<backend::cuda, T>& src) {
  if (dst.numel() != src.numel()) fail<ShapeError>("copy: ", src.shape(), " into ", dst.shape());
  if (src.numel())
    P4LM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.numel() * sizeof(T), cudaMemcpyDeviceToDevice,
                                    cuda::current_context().stream()));
}
// Host to device, queued (pageable host memory is staged before this returns, so it may be reused).
template <class T>
void copy(TensorView<backend::cuda, T> dst, const TensorView<backend::cpu, T>& src) {
  if (dst.numel() != src.numel()) fail<ShapeError>("copy: ", src.shape(), " into ", dst.shape());
  if (src.numel())
    P4LM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.numel() * sizeof(T), cudaMemcpyHostToDevice,
                                    cuda::current_context().stream()));
}
// Device to host: waits for the stream, so dst holds the result of every op queued before; throws the
// first pending device-side argument error.
template <class T>
void copy(TensorView<backend::cpu, T> dst, const TensorView<backend::cuda, T>& src) {
  if (dst.numel() != src.numel()) fail<ShapeError>("copy: ", src.shape(), " into ", dst.shape());
  auto& ctx = cuda::current_context();
  if (src.numel())
    P4LM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.numel() * sizeof(T), cudaMemcpyDeviceToHost,
                                    ctx.stream()));
  ctx.synchronize();
}

template <class T>
std::vector<T> to_vector(const TensorView<backend::cuda, T>& src) {
  std::vector<T> out(src.numel());
  copy(TensorView<backend::cpu, T>(out.data(), src.shape()), src);
  return out;
}
template <class T>
std::vector<T> Tensor<backend::cuda, T>::to_vector() const {
  return p4lm::to_vector<T>(*this);
}

template <class T>
Tensor<backend::cuda, T> to_cuda(const TensorView<backend::cpu, T>& host) {
  return Tensor<backend::cuda, T>(host);
}
// Needs the CPU Tensor (core/tensor.hpp, xtensor) in the translation unit that calls it.
template <class T>
Tensor<backend::cpu, T> to_cpu(const TensorView<backend::cuda, T>& device) {
  Tensor<backend::cpu, T> out(device.shape());
  copy(out.view(), device);
  return out;
}

// to<backend::cuda>(t), to<backend::cpu>(t): an owning copy on the named backend (also same-backend).
template <Backend To, Backend From, class T>
Tensor<To, T> to(const TensorView<From, T>& src) {
  if constexpr (std::is_same_v<To, backend::cuda> && std::is_same_v<From, backend::cpu>)
    return to_cuda(src);
  else if constexpr (std::is_same_v<To, backend::cpu> && std::is_same_v<From, backend::cuda>)
    return to_cpu(src);
  else
    return Tensor<To, T>(src);
}

}  // namespace p4lm
