#pragma once
// The input layer of a transformer: token embeddings, optional learned positions, and prefix rows.
//
//   x (B, S, C), S = P + T:  rows [0, P) = prefix (B, P, C)          (+ positions[start + s])
//                            rows [P, S) = tokens[ids (B, T)]         (+ positions[start + s])
//
// The prefix is where P4LM's CF adapters put their soft tokens; backward returns its gradient. Without
// a position table (RoPE models) prefix rows are copied as they are. `start` (per sequence) shifts the
// positions for decoding after cached ones.

#include <cstddef>
#include <cstdint>
#include <span>

#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/ops/all_backends.hpp"

namespace p4lm::nn {

template <Backend B, Scalar T = float>
struct Embedding {
  using View = TensorView<B, T>;
  using Ids = TensorView<B, std::int32_t>;

  Parameter<T, B>* tokens = nullptr;     // (V, C)
  Parameter<T, B>* positions = nullptr;  // (max_seq, C) or none

  std::size_t vocabulary() const { return tokens->value.dim(0); }
  std::size_t width() const { return tokens->value.dim(1); }

  // x (B, P + T, C) from prefix (B, P, C) or {} and ids (B, T); start[b] = the first row's position
  // (empty span: 0 for every sequence).
  void forward(View x, const View& prefix, const Ids& ids, std::span<const std::int32_t> start = {}) const {
    const std::size_t Bn = x.dim(0), S = x.dim(1), P = is_given(prefix) ? prefix.dim(1) : 0;
    for (std::size_t b = 0; b < Bn; ++b) {
      const View xb = x[b];
      const std::size_t s0 = start.empty() ? 0 : static_cast<std::size_t>(start[b]);
      if (P) {
        copy(xb.rows(0, P), prefix[b]);
        if (positions) ops::residual_forward(xb.rows(0, P), xb.rows(0, P), positions->value.rows(s0, s0 + P));
      }
      if (S == P) continue;
      if (positions)
        ops::embedding_forward(xb.rows(P, S), ids[b], tokens->value,
                               positions->value.rows(s0 + P, positions->value.dim(0)));
      else
        ops::embedding_forward(xb.rows(P, S), ids[b], tokens->value);
    }
  }

  // dx (B, S, C) -> dprefix (B, P, C) (overwritten; {} when there is no prefix) and the tables'
  // gradients (accumulated where trainable). Positions start at 0 (training).
  void backward(View dprefix, const View& dx, const Ids& ids) const {
    const std::size_t Bn = dx.dim(0), S = dx.dim(1), P = is_given(dprefix) ? dprefix.dim(1) : 0;
    const bool dpos = positions && positions->trainable;
    for (std::size_t b = 0; b < Bn; ++b) {
      const View db = dx[b];
      if (P) {
        copy(dprefix[b], db.rows(0, P));
        if (dpos)
          ops::residual_forward(positions->grad.rows(0, P), positions->grad.rows(0, P), db.rows(0, P));
      }
      if (S == P) continue;
      const View dwpe = dpos ? positions->grad.rows(P, positions->grad.dim(0)) : View{};
      ops::embedding_backward(grad_of(tokens), dwpe, db.rows(P, S), ids[b]);
    }
  }

  bool trainable() const noexcept { return tokens->trainable || (positions && positions->trainable); }
};

}  // namespace p4lm::nn
