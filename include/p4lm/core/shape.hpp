#pragma once
// Shape of a tensor: rank 0..4, row-major. Fixed capacity, so copying a shape never allocates.

#include <array>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "p4lm/core/error.hpp"

namespace p4lm {

class Shape {
 public:
  static constexpr std::size_t max_rank = 4;

  constexpr Shape() = default;
  Shape(std::initializer_list<std::size_t> dims) {
    if (dims.size() > max_rank) fail<ShapeError>("tensor rank ", dims.size(), " exceeds ", max_rank);
    for (auto d : dims) dims_[rank_++] = d;
  }
  template <class Range>
  requires requires(const Range& r) {
    r.begin();
    r.end();
    r.size();
  }
  static Shape from(const Range& dims) {
    if (dims.size() > max_rank) fail<ShapeError>("tensor rank ", dims.size(), " exceeds ", max_rank);
    Shape s;
    for (auto d : dims) s.dims_[s.rank_++] = static_cast<std::size_t>(d);
    return s;
  }

  constexpr std::size_t rank() const noexcept { return rank_; }
  constexpr std::size_t operator[](std::size_t i) const noexcept { return dims_[i]; }
  constexpr std::size_t& operator[](std::size_t i) noexcept { return dims_[i]; }
  constexpr const std::size_t* begin() const noexcept { return dims_.data(); }
  constexpr const std::size_t* end() const noexcept { return dims_.data() + rank_; }
  constexpr std::size_t size() const noexcept { return rank_; }

  constexpr std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (std::size_t i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  // Product of all dimensions but the last: the number of rows of the tensor seen as a matrix.
  constexpr std::size_t rows() const noexcept {
    return rank_ == 0 ? 1 : numel() / (dims_[rank_ - 1] ? dims_[rank_ - 1] : 1);
  }
  constexpr std::size_t last() const noexcept { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }

  // Shape without the first dimension (the shape of t[i]).
  Shape drop_front() const {
    if (rank_ == 0) fail<ShapeError>("cannot index a rank-0 tensor");
    Shape s;
    for (std::size_t i = 1; i < rank_; ++i) s.dims_[s.rank_++] = dims_[i];
    return s;
  }

  friend constexpr bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (std::size_t i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '(';
    for (std::size_t i = 0; i < s.rank_; ++i) os << (i ? ", " : "") << s.dims_[i];
    return os << ')';
  }

 private:
  std::array<std::size_t, max_rank> dims_{};
  std::size_t rank_ = 0;
};

}  // namespace p4lm
