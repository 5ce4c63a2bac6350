#pragma once
// A transformer block: one body for training, scoring and cached decoding, with the norms' placement
// as a policy.
//
//   placement::PreNorm (GPT-2, Llama)          placement::PostNorm (BERT, the reward models' encoder)
//   res2 = x + Attention(Norm1(x))             res2 = x + Attention(x);     ln1 = Norm1(res2)
//   res3 = res2 + MLP(Norm2(res2))  -> out     res3 = ln1 + MLP(ln1);       ln2 = Norm2(res3)  -> out
//
//   nn::Block<B, nn::RMSNorm<B>, Attention<B>, nn::MLP<B, nn::activation::SwiGLU>> block{n1, attn, n2, mlp};
//   block.forward(acts, x, pass);             // acts.res3 is the output; acts cache what backward needs
//   block.backward(dres, acts, x, pass, s);   // in: d loss / d res3, out: d loss / d x (same buffer)
//   block.decode(acts, x, step);              // acts.res3 may be x itself: x is read before res3 is written
//
// forward() and decode() run the same body (run()); they differ only in what the attention reads (the
// sequences themselves, or the KV cache) and in how the products run (dense GEMMs, or the streamed
// kernel for a decoding step's few rows).

#include <cstddef>

#include "p4lm/nn/attention.hpp"
#include "p4lm/nn/mlp.hpp"
#include "p4lm/nn/norm.hpp"

namespace p4lm::nn {

namespace placement {
struct PreNorm {
  static constexpr bool pre = true;
};
struct PostNorm {
  static constexpr bool pre = false;
};
}  // namespace placement

template <Backend B, class Norm, class Attn, class Mlp, Scalar T = float,
          class Placement = placement::PreNorm>
struct Block {
  using View = TensorView<B, T>;
  static constexpr bool pre_norm = Placement::pre;

  Norm norm1;
  Attn attn;
  Norm norm2;
  Mlp mlp;

  struct Acts {
    View ln1, ln1_mean, ln1_rstd;
    typename Attn::Acts attn;
    View res2, ln2, ln2_mean, ln2_rstd;
    typename Mlp::Acts mlp;
    View res3;
  };
  struct Scratch {
    View dln;
    typename Attn::Scratch attn;
    typename Mlp::Scratch mlp;
    View norm;  // (2 C): frozen gains' throwaway gradients
  };

  // Views for Bn sequences of Sq rows attending over Sk keys, from the owner's workspace (take).
  // Decoding (decoding = true) keeps no fused qkv and may alias res3 to the input afterwards.
  template <class Take>
  Acts layout(Take&& take, std::size_t Bn, std::size_t Sq, std::size_t Sk, bool decoding = false) const {
    const std::size_t C = width(), N = Bn * Sq;
    const Shape rows{Bn, Sq};
    Acts a;
    a.ln1 = take(Shape{Bn, Sq, C});
    a.ln1_mean = Norm::has_mean ? take(Shape{N}) : View{};
    a.ln1_rstd = take(Shape{N});
    a.attn = attn.layout(take, Bn, Sq, Sk, decoding);
    a.res2 = take(Shape{Bn, Sq, C});
    a.ln2 = take(Shape{Bn, Sq, C});
    a.ln2_mean = Norm::has_mean ? take(Shape{N}) : View{};
    a.ln2_rstd = take(Shape{N});
    a.mlp = Mlp::layout(take, rows, mlp.hidden());
    a.res3 = take(Shape{Bn, Sq, C});
    return a;
  }
  template <class Take>
  Scratch layout_scratch(Take&& take, std::size_t Bn, std::size_t S) const {
    Scratch s;
    s.dln = take(Shape{Bn, S, width()});
    s.attn = attn.layout_scratch(take, Bn, S);
    s.mlp = Mlp::layout_scratch(take, Shape{Bn, S}, mlp.hidden());
    s.norm = take(Shape{2 * width()});
    return s;
  }

  std::size_t width() const { return norm1.weight->value.numel(); }
  // The block's output among its activations.
  static const View& output(const Acts& a) { return pre_norm ? a.res3 : a.ln2; }
  bool trainable() const noexcept {
    return norm1.trainable() || attn.trainable() || norm2.trainable() || mlp.trainable();
  }

  void forward(const Acts& a, const View& x, const typename Attn::Pass& pass) const { run(a, x, pass); }
  void decode(const Acts& a, const View& x, const typename Attn::Step& step) const { run(a, x, step); }

  // dres: in, d loss / d output(a); out, d loss / d x. Parameter gradients accumulate where trainable.
  void backward(View dres, const Acts& a, const View& x, const typename Attn::Pass& pass,
                const Scratch& s) const {
    fill(s.dln, T(0));
    if constexpr (pre_norm) {
      mlp.backward(s.dln, dres, a.mlp, a.ln2, s.mlp);
      norm2.backward(dres, s.dln, a.res2, a.ln2_mean, a.ln2_rstd, s.norm);
      fill(s.dln, T(0));
      attn.backward(s.dln, dres, a.attn, a.ln1, pass, s.attn);
      norm1.backward(dres, s.dln, x, a.ln1_mean, a.ln1_rstd, s.norm);
    } else {
      norm2.backward(s.dln, dres, a.res3, a.ln2_mean, a.ln2_rstd, s.norm);  // s.dln = d res3
      copy(dres, s.dln);                                                    // d ln1 = d res3 + ...
      mlp.backward(dres, s.dln, a.mlp, a.ln1, s.mlp);
      fill(s.dln, T(0));
      norm1.backward(s.dln, dres, a.res2, a.ln1_mean, a.ln1_rstd, s.norm);  // s.dln = d res2
      copy(dres, s.dln);                                                    // d x = d res2 + ...
      attn.backward(dres, s.dln, a.attn, x, pass, s.attn);
    }
  }

 private:
  template <class Context>
  void run(const Acts& a, const View& x, const Context& ctx) const {
    constexpr bool decoding = std::is_same_v<Context, typename Attn::Step>;
    if constexpr (!pre_norm) {
      static_assert(!decoding, "nn::Block: cached decoding is for pre-norm causal models");
      attn.forward(a.res2, a.attn, x, ctx);
      ops::residual_forward(a.res2, a.res2, x);
      norm1.forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.res2);
      mlp.forward(a.res3, a.mlp, a.ln1);
      ops::residual_forward(a.res3, a.res3, a.ln1);
      norm2.forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res3);
      return;
    }
    norm1.forward(a.ln1, a.ln1_mean, a.ln1_rstd, x);
    if constexpr (decoding)
      attn.decode(a.res2, a.attn, a.ln1, ctx);
    else
      attn.forward(a.res2, a.attn, a.ln1, ctx);
    ops::residual_forward(a.res2, a.res2, x);
    norm2.forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2);
    mlp.forward(a.res3, a.mlp, a.ln2, decoding);
    ops::residual_forward(a.res3, a.res3, a.res2);
  }
};

}  // namespace p4lm::nn
