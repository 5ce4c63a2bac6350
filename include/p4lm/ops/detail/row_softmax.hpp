#pragma once
// Row kernels shared by the softmax-based losses (do not include directly): max and Σ exp over one
// row of logits, vectorised with xsimd. Float rows use exp_fast (within 2 ulp of std::exp), and the
// one-read max-and-sum its shorter exp_nonpositive: at a 50257-entry vocabulary the exponentials'
// instruction count, more than memory, sets the speed.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "p4lm/backend/cpu/simd.hpp"
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

// Max and Σ exp(x - max) of a row.
template <class T>
struct MaxSumExp {
  T max;
  T sum;
};

// The same two numbers as row_max then row_sum_exp, in one read of the row (an online softmax): each
// lane keeps a running max and a sum relative to it. A chunk of two batches first raises the lanes'
// maxima (rescaling their sums by exp(old - new) when one moves: a few times per row, ~ln(n) per lane
// for shuffled logits), then adds its exps; the lanes are merged at the end. The row is read once from
// memory, so its loads overlap the exps instead of a max pass streaming it before them. Same result as
// the two passes within float summation rounding (tests/ops/test_logprob_gather.cpp).
template <class T>
MaxSumExp<T> row_max_sum_exp(const T* x, std::size_t n) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size, K = 2, step = K * W;
  if (n < step) {  // too short for a chunk: two passes over a row that sits in L1
    const T m = row_max(x, n);
    return {m, row_sum_exp(x, n, m, static_cast<T*>(nullptr))};
  }
  // lowest(), not -inf: a lane whose values so far are all -inf must not compute exp(-inf - -inf).
  Batch m(std::numeric_limits<T>::lowest()), s0(T(0)), s1(T(0));
  std::size_t i = 0;
  for (; i + step <= n; i += step) {
    // Pull the next row (rows are contiguous) into cache while this one computes, as in row_sum_exp.
    for (std::size_t l = 0; l < step; l += 64 / sizeof(T)) __builtin_prefetch(x + n + i + l, 0, 2);
    const Batch v0 = Batch::load_unaligned(x + i), v1 = Batch::load_unaligned(x + i + W);
    const Batch mn = xsimd::max(m, xsimd::max(v0, v1));
    if (xsimd::any(mn > m)) {
      const Batch f = exp_nonpositive(m - mn);
      s0 *= f;
      s1 *= f;
      m = mn;
    }
    s0 += exp_nonpositive(v0 - m);
    s1 += exp_nonpositive(v1 - m);
  }
  alignas(64) T ml[W], sl[W];
  m.store_aligned(ml);
  (s0 + s1).store_aligned(sl);
  T mx = ml[0];
  for (std::size_t l = 1; l < W; ++l) mx = std::max(mx, ml[l]);
  for (std::size_t j = i; j < n; ++j) mx = std::max(mx, x[j]);
  T sum = 0;
  for (std::size_t l = 0; l < W; ++l) sum += sl[l] * std::exp(ml[l] - mx);
  for (; i < n; ++i) sum += std::exp(x[i] - mx);
  return {mx, sum};
}

// d[j] += a · exp(x[j] - shift) over the row (the softmax term of a log-softmax gradient).
template <class T>
void row_add_scaled_exp(T* d, const T* x, std::size_t n, T shift, T a) {
  using Batch = xsimd::batch<T>;
  constexpr std::size_t W = Batch::size;
  std::size_t i = 0;
  for (; i + W <= n; i += W)
    backend::cpu_simd::fma(Batch(a), exp_fast(Batch::load_unaligned(x + i) - shift),
                           Batch::load_unaligned(d + i))
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
    acc = backend::cpu_simd::fnma(exp_fast(z), z, acc);
  }
  T h = xsimd::hadd(acc);
  for (; i < n; ++i) h -= std::exp(x[i] - l) * (x[i] - l);
  return h;
}

}  // namespace p4lm::ops::detail
