#pragma once
// Token (+ optional learned position) embeddings: GPT-2's wte/wpe lookup (llm.c's encoder).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "p4lm/ops/detail/common.hpp"
#include "p4lm/ops/shape_checks.hpp"

namespace p4lm::ops {

// ids (..., T) in [0, V), wte (V, C), wpe (maxT, C) with T <= maxT, or {}
//   -> out (..., T, C) = wte[ids] (+ wpe[t], t the position along the last dimension of ids)
template <Scalar T>
void embedding_forward(CpuView<T> out, const CpuIds& ids, const CpuView<T>& wte, const CpuView<T>& wpe = {}) {
  const std::size_t C = check::embedding_forward(out, ids, wte, wpe);
  const std::size_t V = wte.dim(0), Tn = ids.shape().last(), N = ids.numel();
  const bool pos = is_given(wpe);
  detail::check_ids("embedding_forward: ids", ids, V);
  const std::int32_t* id = ids.data();
  const T *te = wte.data(), *pe = pos ? wpe.data() : nullptr;
  T* o = out.data();
  detail::parallel_ranges(
      N,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r) {
          const T* e = te + static_cast<std::size_t>(id[r]) * C;
          T* y = o + r * C;
          if (pe) {
            const T* p = pe + (r % Tn) * C;
            for (std::size_t c = 0; c < C; ++c) y[c] = e[c] + p[c];
          } else {
            std::copy(e, e + C, y);
          }
        }
      },
      std::max<std::size_t>(1, detail::parallel_grain / std::max<std::size_t>(C, 1)));
}

// dout (..., T, C), ids (..., T) -> dwte (V, C) += scatter-add of dout rows by id,
//                                   dwpe (maxT, C) += Σ over sequences of dout[..., t, :]
// Either gradient may be {} (skipped). Threads split the C channels, each walks every row in order:
// repeated ids never race and the sums do not depend on the thread count.
template <Scalar T>
void embedding_backward(CpuView<T> dwte, CpuView<T> dwpe, const CpuView<T>& dout, const CpuIds& ids) {
  const std::size_t C = check::embedding_backward(dwte, dwpe, dout, ids);
  const std::size_t Tn = ids.shape().last(), N = ids.numel();
  const bool dte = is_given(dwte), dpe = is_given(dwpe);
  if (dte) detail::check_ids("embedding_backward: ids", ids, dwte.dim(0));
  const std::int32_t* id = ids.data();
  const T* d = dout.data();
  T *gte = dte ? dwte.data() : nullptr, *gpe = dpe ? dwpe.data() : nullptr;
  detail::parallel_ranges(
      C,
      [&](std::size_t c0, std::size_t c1) {
        for (std::size_t r = 0; r < N; ++r) {
          const T* g = d + r * C;
          if (gte) {
            T* w = gte + static_cast<std::size_t>(id[r]) * C;
            for (std::size_t c = c0; c < c1; ++c) w[c] += g[c];
          }
          if (gpe) {
            T* p = gpe + (r % Tn) * C;
            for (std::size_t c = c0; c < c1; ++c) p[c] += g[c];
          }
        }
      },
      N * C >= 2 * detail::parallel_grain ? 16 : C);
}

}  // namespace p4lm::ops
