#pragma once
// Residual connection on CUDA (ops/residual.hpp): out = a + b; backward passes dout to both branches.

#include <cstddef>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {
struct AddInto {  // out[i] = a[i] + b[i]  (out may alias a or b: one element per index)
  float* out;
  const float* a;
  const float* b;
  __device__ void operator()(std::size_t i) const { out[i] = a[i] + b[i]; }
};
struct AccumulateTwo {  // da[i] += d[i], db[i] += d[i] (either may be null)
  float* da;
  float* db;
  const float* d;
  __device__ void operator()(std::size_t i) const {
    const float g = d[i];
    if (da) da[i] += g;
    if (db) db[i] += g;
  }
};
}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// a, b (any shape, equal) -> out (same shape) = a + b; out may alias a or b
inline void residual_forward(CudaView out, const CudaView& a, const CudaView& b) {
  check::residual_forward(out, a, b);
  cuda::detail::for_each_index("residual_forward", a.numel(),
                               cuda::detail::AddInto{out.data(), a.data(), b.data()});
}

// dout -> da += dout, db += dout (either may be {})
inline void residual_backward(CudaView da, CudaView db, const CudaView& dout) {
  check::residual_backward(da, db, dout);
  const bool ga = is_given(da), gb = is_given(db);
  if (!ga && !gb) return;
  cuda::detail::for_each_index(
      "residual_backward", dout.numel(),
      cuda::detail::AccumulateTwo{ga ? da.data() : nullptr, gb ? db.data() : nullptr, dout.data()});
}

}  // namespace p4lm::ops
