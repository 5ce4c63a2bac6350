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
// Each MLP is an nn::MLP<B, activation::Gelu>: Linear(Dim -> H) - GELU - Linear(H -> Tokens·C). Prefix
// layout per sequence: the user's Tokens rows, then the item's Tokens rows. Parameters live in one
// allocation (gradients in another, nn::ParameterSet) with stable names:
// adapter.{user,item}.fc{1,2}.{weight,bias}. The backend is the last template argument:
// CFAdapter<32, 1, float, backend::cuda> runs on the GPU (free soft tokens; mixture output is CPU-only).
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
#include "p4lm/nn/mlp.hpp"
#include "p4lm/nn/parameter_set.hpp"

namespace p4lm {

// True when CF embeddings of width EmbeddingDim can feed a CFAdapter<AdapterDim>.
template <int EmbeddingDim, int AdapterDim>
concept CFDimMatches = EmbeddingDim == AdapterDim;

template <int Dim, int Tokens = 1, Scalar T = float, Backend B = backend::cpu>
class CFAdapter {
  static_assert(Dim > 0, "CFAdapter<Dim, Tokens>: Dim (the CF embedding width) must be positive");
  static_assert(Tokens > 0, "CFAdapter<Dim, Tokens>: Tokens (soft tokens per embedding) must be positive");

 public:
  using value_type = T;
  using backend_type = B;
  using View = TensorView<B, T>;
  using Mlp = nn::MLP<B, nn::activation::Gelu, T>;
  static constexpr int dim = Dim;
  static constexpr int tokens = Tokens;
  static constexpr std::size_t prefix_length = 2 * static_cast<std::size_t>(Tokens);  // user + item

  // d_model: the LM's width C. hidden: the MLPs' hidden width (0: max(Dim, C)). vocabulary: 0 for
  // free soft tokens (the paper's adapters), or the LM's vocabulary size V for mixture output.
  explicit CFAdapter(std::size_t d_model, std::size_t hidden = 0, std::size_t vocabulary = 0)
      : C_(d_model), H_(hidden ? hidden : std::max<std::size_t>(Dim, d_model)), V_(vocabulary) {
    if (C_ == 0) fail<InvalidArgument>("CFAdapter: d_model must be > 0");
    if (V_ && B::is_device) fail<InvalidArgument>("CFAdapter: mixture output runs on the CPU backend only");
    const std::size_t O = Tokens * fc2_width();
    std::vector<ParameterSpec> specs;
    for (const char* side : {"user", "item"}) {
      const std::string prefix = std::string("adapter.") + side;
      for (auto& s : nn::Linear<B, T>::specs(prefix + ".fc1", Dim, H_, true)) specs.push_back(s);
      for (auto& s : nn::Linear<B, T>::specs(prefix + ".fc2", H_, O, true)) specs.push_back(s);
    }
    params_ = nn::ParameterSet<B, T>(specs, "CFAdapter");
    for (int side = 0; side < 2; ++side) {
      const std::string prefix = std::string("adapter.") + (side ? "item" : "user");
      mlp_[side] = Mlp{nn::Linear<B, T>::bind(params_, prefix + ".fc1", true),
                       nn::Linear<B, T>::bind(params_, prefix + ".fc2", true)};
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
    copy.params_.copy_values_from(params_);
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

  std::span<Parameter<T, B>> parameters() noexcept { return params_.parameters(); }
  std::span<const Parameter<T, B>> parameters() const noexcept { return params_.parameters(); }
  std::size_t num_parameters() const noexcept { return params_.numel(); }
  std::size_t freeze(std::string_view glob) { return params_.freeze(glob); }
  std::size_t unfreeze(std::string_view glob) { return params_.unfreeze(glob); }
  void zero_grad() { params_.zero_grad(); }

  // fc1 ~ N(0, 1/(Dim·input_std²)) (unit-variance pre-activations for inputs whose coordinates have
  // standard deviation input_std: measure it on the CF embeddings), fc2 ~ N(0,
  // out_std² / (0.425 H)) (E[gelu(z)²] ≈ 0.425 for z ~ N(0, 1)), so each soft-token coordinate starts
  // with standard deviation ≈ out_std: pick the scale of the LM's token embeddings. Biases 0. With
  // mixture output the logits start with standard deviation 1 whatever out_std: mixtures close to the
  // mean embedding that still differ between users.
  void init_random(Rng& rng, double out_std = 0.02, double input_std = 1.0) {
    if (V_) out_std = 1.0;
    std::vector<T> host;
    for (auto& p : params_.parameters()) {
      host.assign(p.value.numel(), T(0));
      if (p.value.rank() == 2) {
        const bool first = p.name.ends_with("fc1.weight");
        const double s =
            first ? 1.0 / (std::sqrt(double(Dim)) * input_std) : out_std / std::sqrt(0.425 * double(H_));
        for (auto& x : host) x = static_cast<T>(s * rng.normal());
      }
      copy(p.value, TensorView<backend::cpu, T>(host.data(), p.value.shape()));
    }
  }

  // user, item (B, Dim) -> prefix (B, 2·Tokens, C). Caches what backward needs (a copy of the inputs).
  void forward(View prefix, const View& user, const View& item) {
    require_vocabulary();
    if (user.rank() != 2)
      fail<ShapeError>("CFAdapter::forward: user: expected (B, ", Dim, "), got ", user.shape());
    const std::size_t n = user.dim(0);
    expect_shape("CFAdapter::forward: user", user.shape(), Shape{n, std::size_t(Dim)});
    expect_shape("CFAdapter::forward: item", item.shape(), Shape{n, std::size_t(Dim)});
    expect_shape("CFAdapter::forward: prefix", prefix.shape(), Shape{n, prefix_length, C_});
    layout(n);
    copy(in_[0].view(), user);
    copy(in_[1].view(), item);
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
    const std::size_t n = users.size();
    expect_shape("CFAdapter::forward: prefix", prefix.shape(), Shape{n, prefix_length, C_});
    require_vocabulary();
    layout(n);
    host_[0].resize(Shape{n, std::size_t(Dim)});
    host_[1].resize(Shape{n, std::size_t(Dim)});
    gather(cf, users, items, host_[0].view(), host_[1].view());
    copy(in_[0].view(), host_[0].view());
    copy(in_[1].view(), host_[1].view());
    for (int side = 0; side < 2; ++side) run_side(side);
    scatter(prefix);
  }

  // Rows users[b] of cf.users into user_out (B, Dim) and items[b] of cf.items into item_out.
  template <int D>
  requires CFDimMatches<D, Dim>
  static void gather(const cf::Embeddings<D>& cf, std::span<const cf::Index> users,
                     std::span<const cf::Index> items, TensorView<backend::cpu, T> user_out,
                     TensorView<backend::cpu, T> item_out) {
    expect_shape("CFAdapter::gather: user_out", user_out.shape(), Shape{users.size(), std::size_t(Dim)});
    expect_shape("CFAdapter::gather: item_out", item_out.shape(), Shape{items.size(), std::size_t(Dim)});
    auto rows = [](const auto& table, std::size_t n, std::span<const cf::Index> idx,
                   TensorView<backend::cpu, T> out, const char* what) {
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
    for (int side = 0; side < 2; ++side) {
      const View dsoft = (V_ ? dsoft_[side] : dout_[side]).view();
      for (std::size_t b = 0; b < B_; ++b)
        copy(dsoft[b], dprefix[b].rows(side * Tokens, (side + 1) * Tokens));
      if (V_) mixture_backward(side);
      const View dinput = side == 0 ? duser : ditem;
      if (is_given(dinput))
        expect_shape(side == 0 ? "CFAdapter::backward: duser" : "CFAdapter::backward: ditem", dinput.shape(),
                     Shape{B_, std::size_t(Dim)});
      mlp_[side].backward(dinput, dout_[side].view(), acts(side), in_[side].view(),
                          {dh_[side].view(), View{}, dg_[side].view()});
    }
  }

 private:
  std::size_t fc2_width() const noexcept { return V_ ? V_ : C_; }

  void require_vocabulary() const {
    if (V_ && table_.data() == nullptr)
      fail<InvalidArgument>(
          "CFAdapter::forward: mixture output needs use_vocabulary(token embeddings) first");
  }

  // Workspace for a batch of B (allocates only when B grows).
  void layout(std::size_t n) {
    B_ = n;
    forwarded_ = true;
    const std::size_t O = Tokens * fc2_width();
    for (int side = 0; side < 2; ++side) {
      in_[side].resize(Shape{n, std::size_t(Dim)});
      h_[side].resize(Shape{n, H_});
      g_[side].resize(Shape{n, H_});
      out_[side].resize(Shape{n, O});
      dout_[side].resize(Shape{n, O});
      dg_[side].resize(Shape{n, H_});
      dh_[side].resize(Shape{n, H_});
      if (V_) {
        probs_[side].resize(Shape{n * Tokens, V_});
        soft_[side].resize(Shape{n * Tokens, C_});
        dsoft_[side].resize(Shape{n, Tokens * C_});
      }
    }
  }

  // Mixture output: logits (B·Tokens rows of V) -> probabilities (kept for backward) -> soft tokens
  // = probs · E.
  void mixture_forward(int side) {
    if constexpr (!B::is_device) {
      ops::softmax_forward(probs_[side].view(), out_[side].view().reshaped(Shape{B_ * Tokens, V_}));
      ops::batched_matmul(soft_[side].view(), probs_[side].view(), table_);
    }
  }

  // dsoft (B, Tokens·C) -> dlogits (B, Tokens·V) in dout_: dprobs = dsoft · Eᵀ, then the softmax
  // Jacobian p ⊙ (dprobs − Σ p·dprobs).
  void mixture_backward(int side) {
    if constexpr (!B::is_device) {
      const std::size_t N = B_ * Tokens;
      View dprobs = dout_[side].view().reshaped(Shape{N, V_});
      ops::batched_matmul(dprobs, dsoft_[side].view().reshaped(Shape{N, C_}), table_, false, true);
      ops::softmax_backward(dprobs, dprobs, probs_[side].view());
    }
  }

  typename Mlp::Acts acts(int side) const { return {h_[side].view(), View{}, g_[side].view()}; }

  void run_side(int side) {
    mlp_[side].forward(out_[side].view(), acts(side), in_[side].view());
    if (V_) mixture_forward(side);
  }

  // (B, Tokens·C) per side -> prefix (B, 2·Tokens, C): user rows first, then item rows.
  void scatter(View prefix) const {
    for (std::size_t b = 0; b < B_; ++b)
      for (int side = 0; side < 2; ++side)
        copy(prefix[b].rows(side * Tokens, (side + 1) * Tokens),
             (V_ ? soft_[side] : out_[side]).view().reshaped(Shape{B_, Tokens * C_})[b]);
  }

  std::size_t C_, H_, V_;
  View table_;  // mixture output: the (V, C) token embeddings
  nn::ParameterSet<B, T> params_;
  Mlp mlp_[2];
  std::size_t B_ = 0;
  bool forwarded_ = false;
  Tensor<B, T> in_[2], h_[2], g_[2], out_[2], dout_[2], dg_[2], dh_[2];
  Tensor<B, T> probs_[2], soft_[2], dsoft_[2];  // mixture output only
  CpuTensor<T> host_[2];                        // CF rows gathered on the host
};

}  // namespace p4lm
