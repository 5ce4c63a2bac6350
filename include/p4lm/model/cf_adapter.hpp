#pragma once
// CFAdapter<Dim, Tokens>: the paper's W_U and W_I (Jeong et al. 2023, §3). Two small MLPs map a
// user's and an item's collaborative-filtering embedding (R^Dim) to `Tokens` soft tokens each in the
// language model's width C; the 2·Tokens soft tokens go before the text prompt (LMInput::prefix).
//
//   p4lm::CFAdapter<32> adapter(lm.config().d_model);        // Tokens = 1: prefix of 2 positions
//   adapter.init_random(rng);
//   adapter.forward(prefix, cf, users, items);               // cf: cf::Embeddings<32>
//   lm.forward({.ids = ids, .prefix = prefix, .targets = targets});
//   lm.backward();
//   adapter.backward(lm.prefix_grad());                      // accumulates into adapter grads
//
// Each MLP is Linear(Dim -> H) - GELU - Linear(H -> Tokens·C). Prefix layout per sequence: the user's
// Tokens rows, then the item's Tokens rows. Parameters live in one allocation (gradients in another)
// with stable names: adapter.{user,item}.fc{1,2}.{weight,bias}.
//
// Vocabulary-mixture output (vocabulary = V > 0): fc2 produces Tokens·V logits instead, and each
// soft token is softmax(logits) · E, a convex mixture of the rows of the LM's token-embedding table E
// (V, C), bound with use_vocabulary(). Soft tokens then lie where real tokens lie, so the pretrained
// model's heads that find and copy earlier tokens can read them; free vectors in R^C are, to a small
// pretrained model, noise it learns to ignore (docs/results.md). E is read, not trained, through
// the adapter (its gradient stops here); the LM trains E through its own text positions.
//
// Dim is a compile-time constant so that feeding embeddings of another width does not compile: the
// members taking cf::Embeddings<D> require D == Dim (concept CFDimMatches), and the compiler's
// message reads "the expression 'EmbeddingDim == AdapterDim [with EmbeddingDim = 16; AdapterDim =
// 32]' evaluated to 'false'".

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/ops/detail/row_softmax.hpp"
#include "p4lm/ops/gelu.hpp"
#include "p4lm/ops/matmul.hpp"

namespace p4lm {

// True when CF embeddings of width EmbeddingDim can feed a CFAdapter<AdapterDim>.
template <int EmbeddingDim, int AdapterDim>
concept CFDimMatches = EmbeddingDim == AdapterDim;

template <int Dim, int Tokens = 1, Scalar T = float>
class CFAdapter {
  static_assert(Dim > 0, "CFAdapter<Dim, Tokens>: Dim (the CF embedding width) must be positive");
  static_assert(Tokens > 0, "CFAdapter<Dim, Tokens>: Tokens (soft tokens per embedding) must be positive");

 public:
  using value_type = T;
  using View = TensorView<backend::cpu, T>;
  static constexpr int dim = Dim;
  static constexpr int tokens = Tokens;
  static constexpr std::size_t prefix_length = 2 * static_cast<std::size_t>(Tokens);  // user + item

  // d_model: the LM's width C. hidden: the MLPs' hidden width (0: max(Dim, C)). vocabulary: 0 for
  // free soft tokens (the paper's adapters), or the LM's vocabulary size V for mixture output.
  explicit CFAdapter(std::size_t d_model, std::size_t hidden = 0, std::size_t vocabulary = 0)
      : C_(d_model), H_(hidden ? hidden : std::max<std::size_t>(Dim, d_model)), V_(vocabulary) {
    if (C_ == 0) fail<InvalidArgument>("CFAdapter: d_model must be > 0");
    const std::size_t D = Dim, O = Tokens * fc2_width();
    const Shape shapes[4] = {{H_, D}, {H_}, {O, H_}, {O}};
    const char* leaves[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    std::size_t total = 0;
    for (int side = 0; side < 2; ++side)
      for (const auto& s : shapes) total += s.numel();
    values_ = CpuTensor<T>(Shape{total});
    grads_ = CpuTensor<T>(Shape{total});
    std::size_t offset = 0;
    for (const char* side : {"user", "item"})
      for (int k = 0; k < 4; ++k) {
        params_.push_back({std::string("adapter.") + side + "." + leaves[k],
                           View(values_.data() + offset, shapes[k]), View(grads_.data() + offset, shapes[k]),
                           true, shapes[k].rank() == 2});
        offset += shapes[k].numel();
      }
  }

  // Views point into this object's storage: copies go through clone().
  CFAdapter(const CFAdapter&) = delete;
  CFAdapter& operator=(const CFAdapter&) = delete;
  CFAdapter(CFAdapter&&) noexcept = default;  // the storages move with their buffers: views stay valid
  CFAdapter& operator=(CFAdapter&&) noexcept = default;

  CFAdapter clone() const {
    CFAdapter copy(C_, H_, V_);
    copy.table_ = table_;
    p4lm::copy(copy.values_.view(), values_.view());
    for (std::size_t i = 0; i < params_.size(); ++i) copy.params_[i].trainable = params_[i].trainable;
    return copy;
  }

  std::size_t d_model() const noexcept { return C_; }
  std::size_t hidden() const noexcept { return H_; }
  std::size_t vocabulary() const noexcept { return V_; }  // 0: free soft tokens

  // Mixture output: the token-embedding table (V, C) the soft tokens mix (a view: it must outlive
  // every forward and backward; bind the LM's own table, which then stays current as the LM trains).
  void use_vocabulary(const View& table) {
    if (V_ == 0) fail<InvalidArgument>("CFAdapter::use_vocabulary: this adapter outputs free soft tokens");
    expect_shape("CFAdapter::use_vocabulary: table", table.shape(), Shape{V_, C_});
    table_ = table;
  }

  std::span<Parameter<T>> parameters() noexcept { return params_; }
  std::span<const Parameter<T>> parameters() const noexcept { return params_; }
  std::size_t num_parameters() const noexcept { return values_.numel(); }
  std::size_t freeze(std::string_view glob) { return set_trainable<T>(params_, glob, false); }
  std::size_t unfreeze(std::string_view glob) { return set_trainable<T>(params_, glob, true); }
  void zero_grad() { grads_.zero(); }

  // fc1 ~ N(0, 1/(Dim·input_std²)) (unit-variance pre-activations for inputs whose coordinates have
  // standard deviation input_std: measure it on the CF embeddings), fc2 ~ N(0,
  // out_std² / (0.425 H)) (E[gelu(z)²] ≈ 0.425 for z ~ N(0, 1)), so each soft-token coordinate starts
  // with standard deviation ≈ out_std: pick the scale of the LM's token embeddings. Biases 0. With
  // mixture output the logits start with standard deviation 1 whatever out_std: mixtures close to the
  // mean embedding that still differ between users.
  void init_random(Rng& rng, double out_std = 0.02, double input_std = 1.0) {
    if (V_) out_std = 1.0;
    for (auto& p : params_) {
      auto v = p.value.span();
      if (p.value.rank() == 1) {
        std::fill(v.begin(), v.end(), T(0));
        continue;
      }
      const bool first = p.name.ends_with("fc1.weight");
      const double s =
          first ? 1.0 / (std::sqrt(double(Dim)) * input_std) : out_std / std::sqrt(0.425 * double(H_));
      for (auto& x : v) x = static_cast<T>(s * rng.normal());
    }
  }

  // user, item (B, Dim) -> prefix (B, 2·Tokens, C). Caches what backward needs (a copy of the inputs).
  void forward(View prefix, const View& user, const View& item) {
    require_vocabulary();
    if (user.rank() != 2)
      fail<ShapeError>("CFAdapter::forward: user: expected (B, ", Dim, "), got ", user.shape());
    const std::size_t B = user.dim(0);
    expect_shape("CFAdapter::forward: user", user.shape(), Shape{B, std::size_t(Dim)});
    expect_shape("CFAdapter::forward: item", item.shape(), Shape{B, std::size_t(Dim)});
    expect_shape("CFAdapter::forward: prefix", prefix.shape(), Shape{B, prefix_length, C_});
    layout(B);
    p4lm::copy(in_[0].view(), user);
    p4lm::copy(in_[1].view(), item);
    for (int side = 0; side < 2; ++side) run_side(side);
    scatter(prefix);
  }

  // Gathers rows users[b] and items[b] of the CF embeddings (converted to T) and runs forward().
  template <int D>
  requires CFDimMatches<D, Dim>
  void forward(View prefix, const cf::Embeddings<D>& cf, std::span<const cf::Index> users,
               std::span<const cf::Index> items) {
    if (users.size() != items.size())
      fail<ShapeError>("CFAdapter::forward: ", users.size(), " users but ", items.size(), " items");
    const std::size_t B = users.size();
    expect_shape("CFAdapter::forward: prefix", prefix.shape(), Shape{B, prefix_length, C_});
    require_vocabulary();
    layout(B);
    gather(cf, users, items, in_[0].view(), in_[1].view());
    for (int side = 0; side < 2; ++side) run_side(side);
    scatter(prefix);
  }

  // Rows users[b] of cf.users into user_out (B, Dim) and items[b] of cf.items into item_out.
  template <int D>
  requires CFDimMatches<D, Dim>
  static void gather(const cf::Embeddings<D>& cf, std::span<const cf::Index> users,
                     std::span<const cf::Index> items, View user_out, View item_out) {
    expect_shape("CFAdapter::gather: user_out", user_out.shape(), Shape{users.size(), std::size_t(Dim)});
    expect_shape("CFAdapter::gather: item_out", item_out.shape(), Shape{items.size(), std::size_t(Dim)});
    auto rows = [](const auto& table, std::size_t n, std::span<const cf::Index> idx, View out,
                   const char* what) {
      for (std::size_t b = 0; b < idx.size(); ++b) {
        if (idx[b] < 0 || static_cast<std::size_t>(idx[b]) >= n)
          fail<InvalidArgument>("CFAdapter::gather: ", what, " index ", idx[b], " outside [0, ", n, ")");
        const float* src = table.data() + static_cast<std::size_t>(idx[b]) * Dim;
        std::transform(src, src + Dim, out.data() + b * Dim, [](float x) { return static_cast<T>(x); });
      }
    };
    rows(cf.users, cf.n_users(), users, user_out, "user");
    rows(cf.items, cf.n_items(), items, item_out, "item");
  }

  // dprefix (B, 2·Tokens, C) -> accumulates the gradients of trainable parameters and, when given,
  // duser / ditem (B, Dim) += d loss / d input. Call after forward() with the same batch.
  void backward(const View& dprefix, View duser = {}, View ditem = {}) {
    if (!forwarded_) fail<InvalidArgument>("CFAdapter::backward: call forward() first");
    expect_shape("CFAdapter::backward: dprefix", dprefix.shape(), Shape{B_, prefix_length, C_});
    const std::size_t O = Tokens * C_;
    for (int side = 0; side < 2; ++side) {
      View dsoft = (V_ ? dsoft_[side] : dout_[side]).view();
      for (std::size_t b = 0; b < B_; ++b) {
        const T* src = dprefix.data() + (b * prefix_length + side * Tokens) * C_;
        std::copy(src, src + O, dsoft.data() + b * O);
      }
      if (V_) mixture_backward(side);
      const View dout = dout_[side].view();
      Parameter<T>* p = &params_[4 * side];  // fc1.weight, fc1.bias, fc2.weight, fc2.bias
      dg_[side].zero();
      ops::matmul_backward(dg_[side].view(), grad_if(p[2]), grad_if(p[3]), dout, g_[side].view(), p[2].value);
      dh_[side].zero();
      ops::gelu_backward(dh_[side].view(), dg_[side].view(), h_[side].view());
      const View dinput = side == 0 ? duser : ditem;
      if (ops::detail::given(dinput))
        expect_shape(side == 0 ? "CFAdapter::backward: duser" : "CFAdapter::backward: ditem", dinput.shape(),
                     Shape{B_, std::size_t(Dim)});
      ops::matmul_backward(dinput, grad_if(p[0]), grad_if(p[1]), dh_[side].view(), in_[side].view(),
                           p[0].value);
    }
  }

 private:
  static View grad_if(const Parameter<T>& p) { return p.trainable ? p.grad : View{}; }

  std::size_t fc2_width() const noexcept { return V_ ? V_ : C_; }

  void require_vocabulary() const {
    if (V_ && table_.data() == nullptr)
      fail<InvalidArgument>(
          "CFAdapter::forward: mixture output needs use_vocabulary(token embeddings) first");
  }

  // Workspace for a batch of B (allocates only when B grows).
  void layout(std::size_t B) {
    B_ = B;
    forwarded_ = true;
    const std::size_t O = Tokens * fc2_width();
    for (int side = 0; side < 2; ++side) {
      in_[side].resize(Shape{B, std::size_t(Dim)});
      h_[side].resize(Shape{B, H_});
      g_[side].resize(Shape{B, H_});
      out_[side].resize(Shape{B, O});
      dout_[side].resize(Shape{B, O});
      dg_[side].resize(Shape{B, H_});
      dh_[side].resize(Shape{B, H_});
      if (V_) {
        probs_[side].resize(Shape{B * Tokens, V_});
        soft_[side].resize(Shape{B * Tokens, C_});
        dsoft_[side].resize(Shape{B, Tokens * C_});
      }
    }
  }

  // Mixture output: logits (B·Tokens rows of V) -> probabilities (kept for backward) -> soft tokens
  // = probs · E.
  void mixture_forward(int side) {
    const T* logits = out_[side].data();
    T* probs = probs_[side].data();
    for (std::size_t r = 0; r < B_ * Tokens; ++r) {  // the losses' row kernels
      const T* z = logits + r * V_;
      T* p = probs + r * V_;
      const T inv = T(1) / ops::detail::row_sum_exp(z, V_, ops::detail::row_max(z, V_), p);
      for (std::size_t v = 0; v < V_; ++v) p[v] *= inv;
    }
    ops::batched_matmul(soft_[side].view(), probs_[side].view(), table_);
  }

  // dsoft (B, Tokens·C) -> dlogits (B, Tokens·V) in dout_: dprobs = dsoft · Eᵀ, then the softmax
  // Jacobian p ⊙ (dprobs − Σ p·dprobs).
  void mixture_backward(int side) {
    const std::size_t N = B_ * Tokens;
    View dprobs = dout_[side].view().reshaped(Shape{N, V_});
    ops::batched_matmul(dprobs, dsoft_[side].view().reshaped(Shape{N, C_}), table_, false, true);
    const T* probs = probs_[side].data();
    for (std::size_t r = 0; r < N; ++r) {
      T* d = dprobs.data() + r * V_;
      const T* p = probs + r * V_;
      T dot = 0;
      for (std::size_t v = 0; v < V_; ++v) dot += p[v] * d[v];
      for (std::size_t v = 0; v < V_; ++v) d[v] = p[v] * (d[v] - dot);
    }
  }

  void run_side(int side) {
    const Parameter<T>* p = &params_[4 * side];
    ops::matmul_forward(h_[side].view(), in_[side].view(), p[0].value, p[1].value);
    ops::gelu_forward(g_[side].view(), h_[side].view());
    ops::matmul_forward(out_[side].view(), g_[side].view(), p[2].value, p[3].value);
    if (V_) mixture_forward(side);
  }

  // (B, Tokens·C) per side -> prefix (B, 2·Tokens, C): user rows first, then item rows.
  void scatter(View prefix) const {
    const std::size_t O = Tokens * C_;
    for (std::size_t b = 0; b < B_; ++b)
      for (int side = 0; side < 2; ++side) {
        const T* src = (V_ ? soft_[side] : out_[side]).data() + b * O;
        std::copy(src, src + O, prefix.data() + (b * prefix_length + side * Tokens) * C_);
      }
  }

  std::size_t C_, H_, V_;
  View table_;  // mixture output: the (V, C) token embeddings
  CpuTensor<T> values_, grads_;
  std::vector<Parameter<T>> params_;
  std::size_t B_ = 0;
  bool forwarded_ = false;
  CpuTensor<T> in_[2], h_[2], g_[2], out_[2], dout_[2], dg_[2], dh_[2];
  CpuTensor<T> probs_[2], soft_[2], dsoft_[2];  // mixture output only
};

}  // namespace p4lm
