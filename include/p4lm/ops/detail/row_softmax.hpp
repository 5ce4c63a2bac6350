#pragma once
// Row kernels shared by the softmax-based losses (do not include directly): max and Σ exp over one
// row of logits, vectorised with xsimd. Float rows use exp_fast (within 2 ulp of std::exp): at a
// 50257-entry vocabulary the exponentials, not memory, set the speed.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "p4lm/ops/detail/fast_math.hpp"

namespace p4lm::ops::detail {

template <class T>
T row_max(const T* x, std::size_t n) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  T m = -std::numeric_limits<T>::infinity();
  std::size_t i = 0;
  if (n >= W) {
    Batch acc = Batch::load_unaligned(x), acc2 = acc;
    for (i = W; i + 2 * W <= n; i += 2 * W) {
      acc = xsimd::max(acc, Batch::load_unaligned(x + i));
      acc2 = xsimd::max(acc2, Batch::load_unaligned(x + i + W));
    }
    for (; i + W <= n; i += W) acc = xsimd::max(acc, Batch::load_unaligned(x + i));
    acc = xsimd::max(acc, acc2);
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
  Batch acc(T(0)), acc2(T(0));  // two sums: the adds' latency stays hidden behind the exps
  std::size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    // Pull the next row (rows are contiguous) into cache while this one computes: the exps and the
    // memory traffic overlap instead of alternating. A prefetch past the tensor's end never faults.
    if (i % (64 / sizeof(T)) == 0) __builtin_prefetch(x + n + i, 0, 2);
    const Batch v = exp_fast(Batch::load_unaligned(x + i) - shift);
    const Batch v2 = exp_fast(Batch::load_unaligned(x + i + W) - shift);
    if (e) {
      v.store_unaligned(e + i);
      v2.store_unaligned(e + i + W);
    }
    acc += v;
    acc2 += v2;
  }
  for (; i + W <= n; i += W) {
    const Batch v = exp_fast(Batch::load_unaligned(x + i) - shift);
    if (e) v.store_unaligned(e + i);
    acc += v;
  }
  T s = xsimd::hadd(acc + acc2);
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
    xsimd::fma(Batch(a), exp_fast(Batch::load_unaligned(x + i) - shift), Batch::load_unaligned(d + i))
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
    acc = xsimd::fnma(exp_fast(z), z, acc);
  }
  T h = xsimd::hadd(acc);
  for (; i < n; ++i) h -= std::exp(x[i] - l) * (x[i] - l);
  return h;
}

}  // namespace p4lm::ops::detail
