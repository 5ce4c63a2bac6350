#pragma once
// Shape validation shared by every backend's ops and by the modules: one definition, so the CPU and
// CUDA implementations of an op accept exactly the same arguments and word their errors the same way.

#include <cstddef>
#include <span>

#include "p4lm/core/error.hpp"
#include "p4lm/core/shape.hpp"

namespace p4lm {

// An optional tensor argument is "not given" when it is a default-constructed view ({}): null data
// and rank 0. (An empty tensor of shape (0) is given, and its shape is checked.)
template <class V>
constexpr bool is_given(const V& v) noexcept {
  return v.data() != nullptr || v.rank() != 0;
}

// s with its last dimension replaced (rank 0: the shape (last)).
inline Shape with_last(Shape s, std::size_t last) {
  if (s.rank() == 0) return Shape{last};
  s[s.rank() - 1] = last;
  return s;
}

// s with one more trailing dimension.
inline Shape append_dim(const Shape& s, std::size_t last) {
  if (s.rank() >= Shape::max_rank) fail<ShapeError>("shape ", s, " has no room for another dimension");
  std::size_t dims[Shape::max_rank] = {};
  for (std::size_t i = 0; i < s.rank(); ++i) dims[i] = s[i];
  dims[s.rank()] = last;
  return Shape::from(std::span<const std::size_t>(dims, s.rank() + 1));
}

inline void expect_rank_at_least(const char* what, const Shape& s, std::size_t rank) {
  if (s.rank() < rank) fail<ShapeError>(what, ": expected rank >= ", rank, ", got shape ", s);
}

// Per-row statistics (layernorm mean/rstd): one element per row of x, in any shape with that many
// elements ((N), (B, T), (L, B, T) slices of an activation block ...).
template <class V>
void expect_rows(const char* op, const char* what, const V& stats, const Shape& x_shape) {
  if (stats.numel() != x_shape.rows())
    fail<ShapeError>(op, ": ", what, ": expected ", x_shape.rows(), " elements (one per row of x ", x_shape,
                     "), got shape ", stats.shape());
}

}  // namespace p4lm
