#pragma once
// Softmax + cross-entropy over the vocabulary, fused and numerically stable (max-shifted), with an
// ignore index (prompt tokens, padding) and the mean over the targets that count.
//
// Three entry points: forward (per-row losses, optionally the probabilities, in place over the
// logits if you like), backward from those probabilities, and a fused pass that overwrites the
// logits with their gradient (llm.c's trick: the (rows, V) buffer is reused, no second one).
// A row's loss is (max - logit[target]) + log Σ exp(logit - max): the first difference is exact for
// nearby values, so float keeps its precision even for logits in the thousands.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/row_softmax.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

namespace detail {
inline std::size_t count_targets(const CpuIds& targets, std::int32_t ignore_index) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < targets.numel(); ++i) n += targets.data()[i] != ignore_index;
  return n;
}
template <class T>
std::size_t rows_grain(std::size_t V) {
  return std::max<std::size_t>(1, parallel_grain / std::max<std::size_t>(V, 1));
}
}  // namespace detail

// logits (..., V), targets (...) in [0, V) or ignore_index
//   -> losses (...) = -log softmax(logits)[target] (0 on ignored rows),
//      probs (..., V) = softmax(logits) if given (may be the logits themselves: computed in place);
//   returns the mean loss over non-ignored rows (0 when every target is ignored).
template <Scalar T>
T softmax_cross_entropy_forward(CpuView<T> losses, CpuView<T> probs, const CpuView<T>& logits,
                                const CpuIds& targets, std::int32_t ignore_index = ignore_index_default) {
  check::softmax_cross_entropy_forward(losses, probs, logits, targets);
  const bool want_probs = is_given(probs);
  const std::size_t V = logits.shape().last(), N = targets.numel();
  detail::check_ids("softmax_cross_entropy_forward: targets", targets, V, true, ignore_index);
  const std::int32_t* t = targets.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* x = logits.data() + r * V;
          T* p = want_probs ? probs.data() + r * V : nullptr;
          const T target_logit = t[r] == ignore_index ? T(0) : x[t[r]];  // read before p overwrites x
          T m, sum;
          if (p) {
            m = detail::row_max(x, V);
            sum = detail::row_sum_exp(x, V, m, p);
            const T inv = T(1) / sum;
            for (std::size_t j = 0; j < V; ++j) p[j] *= inv;
          } else {
            const auto ms = detail::row_max_sum_exp(x, V);  // losses only: one read of the row
            m = ms.max;
            sum = ms.sum;
          }
          losses.data()[r] = t[r] == ignore_index ? T(0) : (m - target_logit) + std::log(sum);
        }
      },
      detail::rows_grain<T>(V));
  const std::size_t count = detail::count_targets(targets, ignore_index);
  double total = 0;
  for (std::size_t r = 0; r < N; ++r) total += losses.data()[r];
  return count ? T(total / double(count)) : T(0);
}

// probs (..., V) from forward, targets (...) -> dlogits (..., V) += dloss / count · (probs - onehot(target))
// on non-ignored rows; count = number of non-ignored targets, dloss = d(objective)/d(mean loss).
template <Scalar T>
void softmax_cross_entropy_backward(CpuView<T> dlogits, const CpuView<T>& probs, const CpuIds& targets,
                                    std::type_identity_t<T> dloss = T(1),
                                    std::int32_t ignore_index = ignore_index_default) {
  check::softmax_cross_entropy_backward(dlogits, probs, targets);
  const std::size_t V = probs.shape().last(), N = targets.numel();
  detail::check_ids("softmax_cross_entropy_backward: targets", targets, V, true, ignore_index);
  const std::size_t count = detail::count_targets(targets, ignore_index);
  if (count == 0) return;
  const T s = dloss / T(count);
  const std::int32_t* t = targets.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          if (t[r] == ignore_index) continue;
          const T* p = probs.data() + r * V;
          T* d = dlogits.data() + r * V;
          for (std::size_t j = 0; j < V; ++j) d[j] += s * p[j];
          d[t[r]] -= s;
        }
      },
      detail::rows_grain<T>(V));
}

// Forward and backward in one pass, in place: logits (..., V) are OVERWRITTEN with
// dloss · d(mean loss)/d(logits) (not accumulated; ignored rows become 0), losses (...) as in forward;
// returns the mean loss. For the LM head, where a second (rows, V) buffer is the largest allocation.
template <Scalar T>
T softmax_cross_entropy_fused(CpuView<T> logits, CpuView<T> losses, const CpuIds& targets,
                              std::type_identity_t<T> dloss = T(1),
                              std::int32_t ignore_index = ignore_index_default) {
  check::softmax_cross_entropy_fused(logits, losses, targets);
  const std::size_t V = logits.shape().last(), N = targets.numel();
  detail::check_ids("softmax_cross_entropy_fused: targets", targets, V, true, ignore_index);
  const std::size_t count = detail::count_targets(targets, ignore_index);
  const T s = count ? dloss / T(count) : T(0);
  const std::int32_t* t = targets.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          T* x = logits.data() + r * V;
          if (t[r] == ignore_index) {
            losses.data()[r] = T(0);
            std::fill(x, x + V, T(0));
            continue;
          }
          const T target_logit = x[t[r]];
          const T m = detail::row_max(x, V);
          const T sum = detail::row_sum_exp(x, V, m, x);
          losses.data()[r] = (m - target_logit) + std::log(sum);
          const T scale = s / sum;
          for (std::size_t j = 0; j < V; ++j) x[j] *= scale;
          x[t[r]] -= s;
        }
      },
      detail::rows_grain<T>(V));
  double total = 0;
  for (std::size_t r = 0; r < N; ++r) total += losses.data()[r];
  return count ? T(total / double(count)) : T(0);
}

}  // namespace p4lm::ops
