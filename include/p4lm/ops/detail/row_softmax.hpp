#pragma once
// Row kernels shared by the softmax-based losses (do not include directly): max and Σ exp over one
// row of logits, vectorised with xsimd.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include <xsimd/xsimd.hpp>

namespace p4lm::ops::detail {

template <class T>
T row_max(const T* x, std::size_t n) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  T m = -std::numeric_limits<T>::infinity();
  std::size_t i = 0;
  if (n >= W) {
    Batch acc = Batch::load_unaligned(x);
    for (i = W; i + W <= n; i += W) acc = xsimd::max(acc, Batch::load_unaligned(x + i));
    alignas(64) T lanes[W];
    acc.store_aligned(lanes);
    for (std::size_t j = 0; j < W; ++j) m = std::max(m, lanes[j]);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// Σ exp(x - shift) over the row; when `e` is not null the terms are written there (e may equal x).
template <class T>
T row_sum_exp(const T* x, std::size_t n, T shift, T* e) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  Batch acc(T(0));
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const Batch v = xsimd::exp(Batch::load_unaligned(x + i) - shift);
    if (e) v.store_unaligned(e + i);
    acc += v;
  }
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) {
    const T v = std::exp(x[i] - shift);
    if (e) e[i] = v;
    s += v;
  }
  return s;
}

// d[j] += a · exp(x[j] - shift) over the row (the softmax term of a log-softmax gradient).
template <class T>
void row_add_scaled_exp(T* d, const T* x, std::size_t n, T shift, T a) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  std::size_t i = 0;
  for (; i + W <= n; i += W)
    (Batch::load_unaligned(d + i) + a * xsimd::exp(Batch::load_unaligned(x + i) - shift))
        .store_unaligned(d + i);
  for (; i < n; ++i) d[i] += a * std::exp(x[i] - shift);
}

// Entropy of softmax(x) given its logsumexp l: Σ exp(x - l) · (l - x).
template <class T>
T row_entropy(const T* x, std::size_t n, T l) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  Batch acc(T(0));
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const Batch z = Batch::load_unaligned(x + i) - l;
    acc -= xsimd::exp(z) * z;
  }
  T h = xsimd::hadd(acc);
  for (; i < n; ++i) h -= std::exp(x[i] - l) * (x[i] - l);
  return h;
}

}  // namespace p4lm::ops::detail
