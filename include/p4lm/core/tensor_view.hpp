#pragma once
// TensorView<B, T>: a non-owning (pointer, shape) pair on backend B, and expect_shape. Split from
// core/tensor.hpp so that CUDA code (nvcc) can use views without including xtensor; see tensor.hpp for
// the conventions ops follow.

#include <algorithm>
#include <cstddef>
#include <span>

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"

namespace p4lm {

namespace detail {
// Defined in core/tensor.hpp (xtensor): builds the xtensor adaptor TensorView::xt() returns.
template <class T>
struct XtAdapt;
}  // namespace detail

template <Backend B, class T>
class TensorView {
 public:
  using backend_type = B;
  using value_type = T;

  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(shape) {}

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  const Shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.rank(); }
  std::size_t dim(std::size_t i) const {
    if (i >= shape_.rank()) fail<ShapeError>("dim ", i, " of a rank-", shape_.rank(), " tensor ", shape_);
    return shape_[i];
  }
  std::size_t numel() const noexcept { return shape_.numel(); }
  bool empty() const noexcept { return numel() == 0; }

  // The same memory seen with another shape of the same element count.
  TensorView reshaped(Shape shape) const {
    if (shape.numel() != numel())
      fail<ShapeError>("cannot reshape ", shape_, " (", numel(), " elements) to ", shape);
    return TensorView(data_, shape);
  }
  // t[i] along the first dimension.
  TensorView operator[](std::size_t i) const {
    if (rank() == 0 || i >= shape_[0]) fail<ShapeError>("index ", i, " out of range for shape ", shape_);
    const Shape inner = shape_.drop_front();
    return TensorView(data_ + i * inner.numel(), inner);
  }
  // Rows [begin, end) along the first dimension.
  TensorView rows(std::size_t begin, std::size_t end) const {
    if (rank() == 0 || begin > end || end > shape_[0])
      fail<ShapeError>("rows [", begin, ", ", end, ") out of range for shape ", shape_);
    Shape s = shape_;
    s[0] = end - begin;
    return TensorView(data_ + begin * (numel() / std::max<std::size_t>(shape_[0], 1)), s);
  }

  // CPU only: the elements as a flat span and as an xtensor adaptor (no copy). xt() is a template so
  // this header needs no xtensor: the adaptor is defined in core/tensor.hpp, which CPU code includes.
  std::span<T> span() const requires(!B::is_device) { return {data_, numel()}; }
  template <class Adapt = detail::XtAdapt<T>>
  auto xt() const requires(!B::is_device) {
    return Adapt::adapt(data_, numel(), shape_);
  }

 protected:
  T* data_ = nullptr;
  Shape shape_{};
};

// An owning tensor: specialised per backend (core/tensor.hpp for the CPU, backend/cuda/tensor.cuh).
template <Backend B, class T = float>
class Tensor;

// Throws ShapeError naming `what` unless the shapes are equal.
inline void expect_shape(const char* what, const Shape& actual, const Shape& expected) {
  if (!(actual == expected)) fail<ShapeError>(what, ": expected shape ", expected, ", got ", actual);
}

}  // namespace p4lm
