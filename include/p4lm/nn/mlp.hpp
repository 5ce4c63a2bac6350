#pragma once
// The transformer's feed-forward layer, with its activation as a policy:
//   activation::Gelu    out = W2 · gelu(W1 x + b1) + b2           (GPT-2, the CF adapters)
//   activation::GeluErf the same with the exact erf GELU            (BERT)
//   activation::SwiGLU  out = W2 · (silu(W1 x) ⊙ W3 x)            (Llama; no biases)
//
//   nn::MLP<B, activation::Gelu> mlp{fc, proj};              // Linear modules (bound by name)
//   mlp.forward(out, acts, x);                               // acts: the caller's views (layout())
//   mlp.backward(dx, dout, acts, x, scratch);                // dx += ...; weights accumulate
//
// The activations backward needs (f1 = W1 x, f2 = W3 x, fg = the activation's output) live in views the
// owner lays out in its workspace, so a step allocates nothing.

#include <cstddef>

#include "p4lm/nn/linear.hpp"

namespace p4lm::nn {

namespace activation {
// GELU, tanh approximation (GPT-2).
struct Gelu {
  static constexpr bool gated = false;
  template <class V>
  static void forward(V out, const V& in) {
    ops::gelu_forward(out, in);
  }
  template <class V>
  static void backward(V din, const V& dout, const V& in) {
    ops::gelu_backward(din, dout, in);
  }
};
// GELU with the exact erf (BERT, the reward models' encoder; CPU).
struct GeluErf {
  static constexpr bool gated = false;
  template <class V>
  static void forward(V out, const V& in) {
    ops::gelu_erf_forward(out, in);
  }
  template <class V>
  static void backward(V din, const V& dout, const V& in) {
    ops::gelu_erf_backward(din, dout, in);
  }
};
struct SwiGLU {
  static constexpr bool gated = true;  // a third matrix (W3, "up") multiplies the activation
};
}  // namespace activation

template <Backend B, class Act, Scalar T = float>
struct MLP {
  using View = TensorView<B, T>;
  static constexpr bool gated = Act::gated;

  Linear<B, T> fc;    // W1 (F, C)
  Linear<B, T> proj;  // W2 (C, F)
  Linear<B, T> up{};  // W3 (F, C), SwiGLU only

  struct Acts {
    View f1, f2, fg;  // (..., F); f2 only when gated
  };
  struct Scratch {
    View df1, df2, dfg;  // (..., F)
  };
  // Views for `rows` rows of width F from take(shape) (the owner's workspace allocator).
  template <class Take>
  static Acts layout(Take&& take, const Shape& rows, std::size_t F) {
    return {take(append_dim(rows, F)), gated ? take(append_dim(rows, F)) : View{}, take(append_dim(rows, F))};
  }
  template <class Take>
  static Scratch layout_scratch(Take&& take, const Shape& rows, std::size_t F) {
    return {take(append_dim(rows, F)), take(append_dim(rows, F)), take(append_dim(rows, F))};
  }

  std::size_t hidden() const { return fc.out_features(); }
  bool trainable() const noexcept { return fc.trainable() || proj.trainable() || (gated && up.trainable()); }

  // out = W2 · act(x); streamed: decoding's few rows (linear_streamed).
  void forward(View out, const Acts& a, const View& x, bool streamed = false) const {
    if constexpr (gated) {
      if (streamed) {
        linear_streamed<B, T>(x, {{a.f1, fc.weight->value}, {a.f2, up.weight->value}});
      } else {
        fc.forward(a.f1, x);
        up.forward(a.f2, x);
      }
      ops::swiglu_forward(a.fg, a.f1, a.f2);
    } else {
      if (streamed)
        linear_streamed<B, T>(x, {{a.f1, fc.weight->value, value_of(fc.bias)}});
      else
        fc.forward(a.f1, x);
      Act::forward(a.fg, a.f1);
    }
    if (streamed)
      linear_streamed<B, T>(a.fg, {{out, proj.weight->value, value_of(proj.bias)}});
    else
      proj.forward(out, a.fg);
  }

  // dx += d/dx of <dout, out> (dx may be {}); parameter gradients accumulate where trainable.
  void backward(View dx, const View& dout, const Acts& a, const View& x, const Scratch& s) const {
    zero(s.dfg);
    proj.backward(s.dfg, dout, a.fg);
    zero(s.df1);
    if constexpr (gated) {
      zero(s.df2);
      ops::swiglu_backward(s.df1, s.df2, s.dfg, a.f1, a.f2);
      fc.backward(dx, s.df1, x);
      up.backward(dx, s.df2, x);
    } else {
      Act::backward(s.df1, s.dfg, a.f1);
      fc.backward(dx, s.df1, x);
    }
  }

 private:
  static void zero(View v) { p4lm::fill(v, T(0)); }
};

}  // namespace p4lm::nn
