#pragma once
// Tensors: TensorView<B, T> is a non-owning (pointer, shape) pair on backend B; Tensor<B, T> owns its
// storage and *is* a view of it (it derives from TensorView), so every op takes views and works on a
// whole tensor, a slice of one, or a window into a single parameter allocation alike.
//
// Ops take inputs as `const TensorView<B, T>&` (read-only) and outputs as `TensorView<B, T>` (by
// value: a view, writes go to the viewed memory). Template deduction accepts a Tensor for either,
// because TensorView is its base class.
//
// CPU storage is an xtensor container (SIMD-aligned), and `xt()` exposes any CPU view to xtensor
// expressions without a copy. CUDA storage lives in p4lm/backend/cuda/tensor.cuh (nvcc only). TensorView
// itself is in core/tensor_view.hpp, which needs no xtensor.

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/tensor_view.hpp"

namespace p4lm {

namespace detail {
template <class T>
struct XtAdapt {
  static auto adapt(T* data, std::size_t numel, const Shape& shape) {
    std::vector<std::size_t> dims(shape.begin(), shape.end());
    return xt::adapt(data, numel, xt::no_ownership(), dims);
  }
};
}  // namespace detail

template <class T>
class Tensor<backend::cpu, T> : public TensorView<backend::cpu, T> {
  using Base = TensorView<backend::cpu, T>;

 public:
  Tensor() { rebind(Shape{0}); }
  explicit Tensor(Shape shape, T value = T(0)) { resize(shape, value); }
  Tensor(Shape shape, std::span<const T> values) {
    resize(shape);
    if (values.size() != shape.numel())
      fail<ShapeError>("tensor of shape ", shape, " needs ", shape.numel(), " values, got ", values.size());
    std::copy(values.begin(), values.end(), storage_.begin());
  }
  Tensor(Shape shape, std::initializer_list<T> values)
      : Tensor(shape, std::span<const T>(values.begin(), values.size())) {}

  Tensor(const Tensor& other) : Base(), storage_(other.storage_) { rebind(other.shape_); }
  Tensor(Tensor&& other) noexcept : Base(), storage_(std::move(other.storage_)) {
    rebind(other.shape_);
    other.rebind(Shape{0});
  }
  // Deep copy of any CPU view.
  explicit Tensor(const Base& view) : Tensor(view.shape()) {
    std::copy(view.data(), view.data() + view.numel(), storage_.begin());
  }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      storage_ = other.storage_;
      rebind(other.shape_);
    }
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    storage_ = std::move(other.storage_);
    rebind(other.shape_);
    other.rebind(Shape{0});
    return *this;
  }

  // Reallocates only when the element count grows past what is held, so a workspace resized to the
  // same or a smaller shape every step never allocates. Contents are unspecified unless `value` is
  // given (then every element is set).
  void resize(Shape shape) {
    if (shape.numel() > storage_.size()) storage_.resize({shape.numel()});
    rebind(shape);
  }
  void resize(Shape shape, T value) {
    resize(shape);
    fill(value);
  }
  void fill(T value) { std::fill(this->data_, this->data_ + this->numel(), value); }
  void zero() { fill(T(0)); }

  const Base& view() const noexcept { return *this; }
  Base view() noexcept { return *this; }
  std::vector<T> to_vector() const { return std::vector<T>(this->data_, this->data_ + this->numel()); }

 private:
  void rebind(Shape shape) {
    this->shape_ = shape;
    this->data_ = storage_.size() ? storage_.data() : nullptr;
  }
  xt::xtensor<T, 1> storage_;
};

template <class T = float>
using CpuTensor = Tensor<backend::cpu, T>;

// Copies src into dst (same backend, same element count).
template <class T>
void copy(TensorView<backend::cpu, T> dst, const TensorView<backend::cpu, T>& src) {
  if (dst.numel() != src.numel()) fail<ShapeError>("copy: ", src.shape(), " into ", dst.shape());
  std::copy(src.data(), src.data() + src.numel(), dst.data());
}

// Sets every element of a view (any shape) to value.
template <class T>
void fill(TensorView<backend::cpu, T> dst, T value) {
  std::fill(dst.data(), dst.data() + dst.numel(), value);
}

}  // namespace p4lm
