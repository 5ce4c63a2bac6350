#pragma once
// Multi-head attention as a policy over backend and mask: Attention<B, Mask>, where Mask is
// attention::Causal (language models) or attention::Bidirectional (encoders: the reward models).
//
//   auto attn = nn::Attention<B>::split(cfg, wq, wk, wv, wo);   // grouped-query heads, RoPE if cfg says
//   auto attn = nn::Attention<B>::fused(cfg, c_attn, c_proj);    // GPT-2's one (3C, C) projection
//   attn.forward(out, acts, x, pass);           // out = Wo · softmax(q kᵀ / sqrt(D)) v   (+ bias)
//   attn.backward(dx, dout, acts, x, pass, s);  // dx += ..., weights accumulate where trainable
//   attn.decode(out, acts, x, step);            // the same layer against a KV cache (one decoding step)
//
// A Pass describes whole sequences: RoPE positions and the ops' AttentionOptions (key lengths for
// padding, the mask). A Step describes new rows appended to cached sequences that may each be at a
// different length: their keys and values go into the cache layer, their queries attend to it.

#include <cstddef>
#include <cstdint>
#include <span>

#include "p4lm/nn/linear.hpp"

namespace p4lm {

// Attention masks as policies: a causal LM attends to the past only; reward encoders see everything.
namespace attention {
struct Causal {
  static constexpr bool causal = true;
};
struct Bidirectional {
  static constexpr bool causal = false;
};
}  // namespace attention

template <class M>
concept AttentionMask = requires {
  { M::causal } -> std::convertible_to<bool>;
};

namespace nn {

struct AttentionConfig {
  std::size_t n_heads = 0;
  std::size_t n_kv_heads = 0;  // divides n_heads (grouped-query attention); == n_heads: plain MHA
  std::size_t head_dim = 0;
  double rope_theta = 0;  // > 0: rotate q and k (RoPE); 0: positions come from the embedding
};

template <Backend B, AttentionMask Mask = attention::Causal, Scalar T = float>
class Attention {
 public:
  using View = TensorView<B, T>;
  using Ids = TensorView<B, std::int32_t>;
  static constexpr bool causal = Mask::causal;

  struct Acts {
    View qkv;      // (B, S, 3 C): fused projection only
    View q, k, v;  // (B, S, H|KV, D): split projections (and decoding)
    View probs;    // (B, H, S, Sk)
    View att;      // (B, S, H, D)
  };
  struct Scratch {
    View datt, dqkv, dqkv_rot;
  };
  struct Pass {
    Ids positions{};  // (S) for RoPE
    ops::AttentionOptions<B> options{};
  };
  struct Step {
    Ids positions{};                         // (B, Sq): absolute position of each new row
    View keys{}, values{};                   // the cache layer, (B, capacity, KV, D)
    std::span<const std::int32_t> filled{};  // positions cached per sequence before this step
    std::span<const std::int32_t> added{};   // new rows per sequence this step (<= Sq)
    Ids key_lengths{};                       // (B) = filled + added, on the backend
    bool same_start = false;                 // every sequence has the same `filled`
  };

  Attention() = default;
  static Attention fused(AttentionConfig c, Linear<B, T> qkv, Linear<B, T> out) {
    if (c.n_kv_heads != c.n_heads)
      fail<InvalidArgument>("Attention::fused: grouped-query heads need split q/k/v");
    Attention a(c);
    a.qkv_ = qkv, a.out_ = out, a.fused_ = true;
    return a;
  }
  static Attention split(AttentionConfig c, Linear<B, T> q, Linear<B, T> k, Linear<B, T> v,
                         Linear<B, T> out) {
    Attention a(c);
    a.q_ = q, a.k_ = k, a.v_ = v, a.out_ = out;
    return a;
  }

  const AttentionConfig& config() const noexcept { return c_; }
  bool trainable() const noexcept {
    return out_.trainable() ||
           (fused_ ? qkv_.trainable() : q_.trainable() || k_.trainable() || v_.trainable());
  }

  // Activation views for Bn sequences of Sq queries over Sk keys (training: Sk = Sq; decoding: the
  // cache capacity). Fused layers cache qkv for backward; decoding always uses q, k, v.
  template <class Take>
  Acts layout(Take&& take, std::size_t Bn, std::size_t Sq, std::size_t Sk, bool decoding) const {
    const std::size_t H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim;
    Acts a;
    if (fused_ && !decoding) {
      a.qkv = take(Shape{Bn, Sq, 3 * H * D});
    } else {
      a.q = take(Shape{Bn, Sq, H, D});
      a.k = take(Shape{Bn, Sq, KV, D});
      a.v = take(Shape{Bn, Sq, KV, D});
    }
    a.probs = take(Shape{Bn, H, Sq, Sk});
    a.att = take(Shape{Bn, Sq, H, D});
    return a;
  }
  template <class Take>
  Scratch layout_scratch(Take&& take, std::size_t Bn, std::size_t S) const {
    const std::size_t H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim, qkv = (H + 2 * KV) * D;
    Scratch s;
    s.datt = take(Shape{Bn, S, H, D});
    s.dqkv = take(Shape{Bn, S, qkv});
    s.dqkv_rot = take(Shape{Bn, S, qkv});
    return s;
  }

  // out (B, S, C) = Wo · attention(x) + bo over whole sequences.
  void forward(View out, const Acts& a, const View& x, const Pass& p) const {
    const std::size_t Bn = x.dim(0), S = x.dim(1), H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim;
    if (fused_) {
      qkv_.forward(a.qkv, x);
      ops::attention_forward_qkv(a.att, a.probs, a.qkv, KV, p.options);
    } else {
      q_.forward(a.q.reshaped({Bn, S, H * D}), x);
      k_.forward(a.k.reshaped({Bn, S, KV * D}), x);
      v_.forward(a.v.reshaped({Bn, S, KV * D}), x);
      if (c_.rope_theta > 0) {
        ops::rope_forward(a.q, a.q, p.positions, c_.rope_theta);
        ops::rope_forward(a.k, a.k, p.positions, c_.rope_theta);
      }
      ops::attention_forward(a.att, a.probs, a.q, a.k, a.v, p.options);
    }
    out_.forward(out, a.att.reshaped({Bn, S, H * D}));
  }

  // dx += d/dx (dx may be {} when the input's gradient is not needed).
  void backward(View dx, const View& dout, const Acts& a, const View& x, const Pass& p,
                const Scratch& s) const {
    const std::size_t Bn = x.dim(0), S = x.dim(1), H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim;
    const std::size_t N = Bn * S;
    View datt = s.datt, dqkv_all = s.dqkv, dqkv_rot = s.dqkv_rot;  // copies: data() of a const view is const
    fill(datt, T(0));
    out_.backward(datt.reshaped({Bn, S, H * D}), dout, a.att.reshaped({Bn, S, H * D}));
    if (fused_) {
      View dqkv(dqkv_all.data(), Shape{Bn, S, 3 * H * D});
      fill(dqkv, T(0));
      ops::attention_backward_qkv(dqkv, datt, a.qkv, a.probs, KV, p.options);
      qkv_.backward(dx, dqkv, x);
      return;
    }
    // dq, dk, dv (rotated), then un-rotate q and k.
    T* g = dqkv_all.data();
    View dq(g, Shape{Bn, S, H, D}), dk(g + N * H * D, Shape{Bn, S, KV, D}),
        dv(g + N * (H + KV) * D, Shape{Bn, S, KV, D});
    fill(View(g, Shape{N * (H + 2 * KV) * D}), T(0));
    ops::attention_backward(dq, dk, dv, datt, a.q, a.k, a.v, a.probs, p.options);
    View dq0 = dq, dk0 = dk;
    if (c_.rope_theta > 0) {
      T* r = dqkv_rot.data();
      dq0 = View(r, Shape{Bn, S, H, D}), dk0 = View(r + N * H * D, Shape{Bn, S, KV, D});
      fill(View(r, Shape{N * (H + 2 * KV) * D}), T(0));
      ops::rope_backward(dq0, dq, p.positions, c_.rope_theta);
      ops::rope_backward(dk0, dk, p.positions, c_.rope_theta);
    }
    q_.backward(dx, dq0.reshaped({Bn, S, H * D}), x);
    k_.backward(dx, dk0.reshaped({Bn, S, KV * D}), x);
    v_.backward(dx, dv.reshaped({Bn, S, KV * D}), x);
  }

  // One decoding step: projects the new rows (streamed products), rotates them, appends their keys and
  // values to the cache layer and attends over it. out (B, Sq, C).
  void decode(View out, const Acts& a, const View& x, const Step& st) const {
    static_assert(causal, "Attention::decode needs a causal mask");
    const std::size_t Bn = x.dim(0), Sq = x.dim(1), H = c_.n_heads, KV = c_.n_kv_heads, D = c_.head_dim;
    const View q = a.q.reshaped({Bn, Sq, H * D}), k = a.k.reshaped({Bn, Sq, KV * D}),
               v = a.v.reshaped({Bn, Sq, KV * D});
    if (fused_) {  // the q, k and v thirds of the fused weight, each its own streamed product
      const View w = qkv_.weight->value, b = value_of(qkv_.bias);
      const std::size_t C = H * D;
      auto bias = [&](std::size_t i) { return is_given(b) ? b.rows(i * C, (i + 1) * C) : View{}; };
      linear_streamed<B, T>(
          x,
          {{q, w.rows(0, C), bias(0)}, {k, w.rows(C, 2 * C), bias(1)}, {v, w.rows(2 * C, 3 * C), bias(2)}});
    } else {
      linear_streamed<B, T>(x, {{q, q_.weight->value, value_of(q_.bias)},
                                {k, k_.weight->value, value_of(k_.bias)},
                                {v, v_.weight->value, value_of(v_.bias)}});
    }
    if (c_.rope_theta > 0) {
      ops::rope_forward(a.q, a.q, st.positions, c_.rope_theta);
      ops::rope_forward(a.k, a.k, st.positions, c_.rope_theta);
    }
    for (std::size_t b = 0; b < Bn; ++b) {
      const std::size_t at = static_cast<std::size_t>(st.filled[b]);
      copy(st.keys[b].rows(at, at + Sq), a.k[b]);
      copy(st.values[b].rows(at, at + Sq), a.v[b]);
    }
    // One batched call when every sequence starts at the same position (prefill) or runs a single
    // query (decode); otherwise one call per sequence.
    if (Sq == 1 || st.same_start) {
      ops::AttentionOptions<B> opt;
      opt.causal = Sq > 1;
      opt.query_offset = Sq > 1 ? st.filled[0] : -1;
      opt.key_lengths = st.key_lengths;
      ops::attention_forward(a.att, a.probs, a.q, st.keys, st.values, opt);
    } else {
      for (std::size_t b = 0; b < Bn; ++b) {
        ops::AttentionOptions<B> one;
        one.causal = true;
        one.query_offset = st.filled[b];
        one.key_lengths = st.key_lengths.rows(b, b + 1);
        auto row = [b](const View& t) { return t.rows(b, b + 1); };
        ops::attention_forward(row(a.att), row(a.probs), row(a.q), row(st.keys), row(st.values), one);
      }
    }
    linear_streamed<B, T>(a.att.reshaped({Bn, Sq, H * D}), {{out, out_.weight->value, value_of(out_.bias)}});
  }

 private:
  explicit Attention(AttentionConfig c) : c_(c) {
    if (!c.n_heads || !c.head_dim || !c.n_kv_heads || c.n_heads % c.n_kv_heads)
      fail<InvalidArgument>("Attention: n_kv_heads (", c.n_kv_heads, ") must divide n_heads (", c.n_heads,
                            ") and both, with head_dim (", c.head_dim, "), be > 0");
  }

  AttentionConfig c_{};
  Linear<B, T> qkv_{}, q_{}, k_{}, v_{}, out_{};
  bool fused_ = false;
};

}  // namespace nn

// The policy the library's users name: Attention<Backend, Mask>.
template <Backend B, AttentionMask Mask = attention::Causal, Scalar T = float>
using Attention = nn::Attention<B, Mask, T>;

}  // namespace p4lm
