#pragma once
// Token (+ learned position) embeddings on CUDA (ops/embedding.hpp).
//
// Ids live in device memory, so they are checked by the kernels: an id outside [0, V) is recorded
// (cuda::Context, thrown as InvalidArgument at the next synchronize or host copy) and its row is
// written as zeros / contributes nothing.
//
// Backward: dwpe is a plain ordered sum per (t, c) (deterministic). dwte is a scatter-add with
// atomicAdd, one thread per (row, channel): fast, but the order in which repeated ids add up varies
// from run to run, so dwte can differ in the last bits between runs (not in value beyond rounding).

#include <cstddef>
#include <cstdint>

#include "p4lm/backend/cuda/common.cuh"

namespace p4lm::cuda::detail {

struct EmbeddingForward {
  float* out;
  const std::int32_t* ids;
  const float* wte;
  const float* wpe;  // may be null
  std::size_t V, C, T;
  DeviceError* err;
  const char* what;  // a host string: only the pointer value travels (context.cuh)
  __device__ void operator()(std::size_t i) const {
    const std::size_t r = i / C, c = i % C;
    const std::int32_t id = ids[r];
    if (id < 0 || static_cast<std::size_t>(id) >= V) {
      if (c == 0) report_error(err, what, static_cast<long long>(r), id, static_cast<long long>(V));
      out[i] = 0.0f;
      return;
    }
    const float e = wte[static_cast<std::size_t>(id) * C + c];
    out[i] = wpe ? e + wpe[(r % T) * C + c] : e;
  }
};

struct EmbeddingScatter {  // dwte[id[r], c] += dout[r, c]
  float* dwte;
  const float* dout;
  const std::int32_t* ids;
  std::size_t V, C;
  DeviceError* err;
  const char* what;
  __device__ void operator()(std::size_t i) const {
    const std::size_t r = i / C, c = i % C;
    const std::int32_t id = ids[r];
    if (id < 0 || static_cast<std::size_t>(id) >= V) {
      if (c == 0) report_error(err, what, static_cast<long long>(r), id, static_cast<long long>(V));
      return;
    }
    atomicAdd(dwte + static_cast<std::size_t>(id) * C + c, dout[i]);
  }
};

struct PositionGrad {  // dwpe[t, c] += Σ_s dout[s, t, c] over the N / T sequences, in order
  float* dwpe;
  const float* dout;
  std::size_t C, T, sequences;
  __device__ void operator()(std::size_t i) const {
    float s = 0;
    for (std::size_t q = 0; q < sequences; ++q) s += dout[q * T * C + i];
    dwpe[i] += s;
  }
};

}  // namespace p4lm::cuda::detail

namespace p4lm::ops {

// ids (..., T) in [0, V), wte (V, C), wpe (maxT, C) with T <= maxT, or {}
//   -> out (..., T, C) = wte[ids] (+ wpe[t])
inline void embedding_forward(CudaView out, const CudaIds& ids, const CudaView& wte,
                              const CudaView& wpe = {}) {
  const std::size_t C = check::embedding_forward(out, ids, wte, wpe);
  const std::size_t V = wte.dim(0), Tn = ids.shape().last(), N = ids.numel();
  const bool pos = is_given(wpe);
  cuda::detail::for_each_index(
      "embedding_forward", N * C,
      cuda::detail::EmbeddingForward{out.data(), ids.data(), wte.data(), pos ? wpe.data() : nullptr, V, C, Tn,
                                     cuda::current_context().device_error(), "embedding_forward: ids"});
}

// dout (..., T, C), ids (..., T) -> dwte (V, C) += scatter-add of dout rows by id (atomic: the order of
// repeated ids is not fixed), dwpe (maxT, C) += Σ over sequences (ordered). Either may be {}.
inline void embedding_backward(CudaView dwte, CudaView dwpe, const CudaView& dout, const CudaIds& ids) {
  const std::size_t C = check::embedding_backward(dwte, dwpe, dout, ids);
  const std::size_t Tn = ids.shape().last(), N = ids.numel();
  const bool dte = is_given(dwte), dpe = is_given(dwpe);
  if (dte)
    cuda::detail::for_each_index(
        "embedding_backward", N * C,
        cuda::detail::EmbeddingScatter{dwte.data(), dout.data(), ids.data(), dwte.dim(0), C,
                                       cuda::current_context().device_error(), "embedding_backward: ids"});
  if (dpe && Tn > 0)
    cuda::detail::for_each_index("embedding_backward", Tn * C,
                                 cuda::detail::PositionGrad{dwpe.data(), dout.data(), C, Tn, N / Tn});
}

}  // namespace p4lm::ops
