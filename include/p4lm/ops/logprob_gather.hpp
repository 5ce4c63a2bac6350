#pragma once
// Log-probabilities of chosen tokens: logprob[r] = logits[r, id[r]] - logsumexp(logits[r, :]).
// PPO needs them for the sampled tokens under the policy (with gradient) and the reference model.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/detail/row_softmax.hpp"
#include "p4lm/ops/shape_checks.hpp"
#include "p4lm/ops/softmax_cross_entropy.hpp"

namespace p4lm::ops {

// logits (..., V), ids (...) in [0, V) or ignore_index
//   -> logprobs (...) (0 on ignored rows),
//      lse (...) = logsumexp of each row if given (cache it for backward),
//      entropy (...) = -Σ p log p of each row if given (a metric: no gradient flows through it).
template <Scalar T>
void logprob_gather_forward(CpuView<T> logprobs, CpuView<T> lse, CpuView<T> entropy, const CpuView<T>& logits,
                            const CpuIds& ids, std::int32_t ignore_index = ignore_index_default) {
  check::logprob_gather_forward(logprobs, lse, entropy, logits, ids);
  const bool want_lse = is_given(lse), want_entropy = is_given(entropy);
  const std::size_t V = logits.shape().last(), N = ids.numel();
  detail::check_ids("logprob_gather_forward: ids", ids, V, true, ignore_index);
  const std::int32_t* id = ids.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* x = logits.data() + r * V;
          const auto [m, sum] = detail::row_max_sum_exp(x, V);  // one read of the row
          const T log_sum = std::log(sum);
          const T l = m + log_sum;
          // (x - max) first: exact for nearby values, so float keeps its precision for large logits.
          logprobs.data()[r] = id[r] == ignore_index ? T(0) : (x[id[r]] - m) - log_sum;
          if (want_lse) lse.data()[r] = l;
          if (want_entropy) entropy.data()[r] = detail::row_entropy(x, V, l);
        }
      },
      detail::rows_grain<T>(V));
}

// dlogprobs (...), logits (..., V), ids (...), lse (...) from forward or {} (then recomputed)
//   -> dlogits (..., V) += dlogprob[r] · (onehot(id[r]) - softmax(logits[r])); ignored rows get nothing
template <Scalar T>
void logprob_gather_backward(CpuView<T> dlogits, const CpuView<T>& dlogprobs, const CpuView<T>& logits,
                             const CpuIds& ids, const CpuView<T>& lse = {},
                             std::int32_t ignore_index = ignore_index_default) {
  check::logprob_gather_backward(dlogits, dlogprobs, logits, ids, lse);
  const bool have_lse = is_given(lse);
  const std::size_t V = logits.shape().last(), N = ids.numel();
  detail::check_ids("logprob_gather_backward: ids", ids, V, true, ignore_index);
  const std::int32_t* id = ids.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          if (id[r] == ignore_index) continue;
          const T* x = logits.data() + r * V;
          T l;
          if (have_lse) {
            l = lse.data()[r];
          } else {
            const auto [m, sum] = detail::row_max_sum_exp(x, V);  // as forward computes it
            l = m + std::log(sum);
          }
          const T g = dlogprobs.data()[r];
          T* d = dlogits.data() + r * V;
          detail::row_add_scaled_exp(d, x, V, l, -g);
          d[id[r]] += g;
        }
      },
      detail::rows_grain<T>(V));
}

}  // namespace p4lm::ops
