#pragma once
// Where the CF adapter's soft tokens sit in the pitch model's input.
//
//   position  0      1 .. Tokens        Tokens+1 .. 2·Tokens   2·Tokens+1 ...
//             BOS    user soft tokens   item soft tokens       prompt text (without its BOS), pitch
//
// The BOS stays first, where the pretrained model always saw it: its first position is an attention
// sink (heads with nothing to read park their attention there), and soft tokens placed before BOS
// would take over that role. So the prefix handed to CausalLM is [embedding of BOS, adapter output]
// and the text ids start after BOS. Measured on the MovieLens pitch corpus (docs/results.md): this
// layout and the soft-tokens-first one give the same held-out loss, and neither, after 600 steps,
// makes real user embeddings beat shuffled ones; the layout is kept because it is the one that
// leaves the pretrained model's input as it was trained.
//
//   SoftPrompt<LlamaLM<>, CFAdapter<32>> soft(bos);
//   soft.forward(prefix, lm, adapter, cf, users, items);    // prefix (B, SoftPrompt::length, C)
//   lm.forward({.ids = ids_without_bos, .prefix = prefix, .targets = targets});
//   lm.backward();
//   soft.backward(lm, adapter, lm.prefix_grad());          // into the adapter and BOS's embedding row

#include <cstddef>
#include <cstdint>
#include <span>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"

namespace p4lm::train {

template <class LM, class Adapter>
class SoftPrompt {
 public:
  using T = typename LM::value_type;
  using View = TensorView<backend::cpu, T>;
  static constexpr std::size_t length = 1 + Adapter::prefix_length;  // BOS + user + item tokens

  explicit SoftPrompt(std::int32_t bos) : bos_(bos) {}
  std::int32_t bos() const noexcept { return bos_; }

  // prefix (B, length, C) <- [wte[bos], adapter(user, item)] per sequence.
  template <int Dim>
  void forward(View prefix, const LM& lm, Adapter& adapter, const cf::Embeddings<Dim>& cf,
               std::span<const cf::Index> users, std::span<const cf::Index> items) {
    const std::size_t B = users.size(), C = lm.config().d_model, P = Adapter::prefix_length;
    expect_shape("SoftPrompt::forward: prefix", prefix.shape(), Shape{B, length, C});
    soft_.resize(Shape{B, P, C});
    adapter.forward(soft_.view(), cf, users, items);
    const T* bos_row = token_embedding(lm).value.data() + static_cast<std::size_t>(bos_) * C;
    for (std::size_t b = 0; b < B; ++b) {
      T* dst = prefix.data() + b * length * C;
      std::copy(bos_row, bos_row + C, dst);
      std::copy(soft_.data() + b * P * C, soft_.data() + (b + 1) * P * C, dst + C);
    }
  }

  // dprefix (B, length, C): row 0 accumulates into BOS's embedding row (when trainable), the rest
  // goes through the adapter's backward.
  void backward(LM& lm, Adapter& adapter, const View& dprefix) {
    const std::size_t B = soft_.dim(0), C = lm.config().d_model, P = Adapter::prefix_length;
    expect_shape("SoftPrompt::backward: dprefix", dprefix.shape(), Shape{B, length, C});
    dsoft_.resize(Shape{B, P, C});
    auto& wte = token_embedding(lm);
    T* dbos = wte.trainable ? wte.grad.data() + static_cast<std::size_t>(bos_) * C : nullptr;
    for (std::size_t b = 0; b < B; ++b) {
      const T* src = dprefix.data() + b * length * C;
      if (dbos)
        for (std::size_t c = 0; c < C; ++c) dbos[c] += src[c];
      std::copy(src + C, src + length * C, dsoft_.data() + b * P * C);
    }
    adapter.backward(dsoft_.view());
  }

 private:
  // Every architecture registers its token embedding (V, C) first (model/arch.hpp).
  template <class Model>
  auto& token_embedding(Model& lm) const {
    auto& p = lm.parameters()[0];
    if (p.value.rank() != 2 || p.value.dim(1) != lm.config().d_model ||
        static_cast<std::size_t>(bos_) >= p.value.dim(0))
      fail<InvalidArgument>("SoftPrompt: parameter ", p.name, " ", p.value.shape(),
                            " is not a token embedding holding BOS ", bos_);
    return p;
  }

  std::int32_t bos_;
  CpuTensor<T> soft_, dsoft_;
};

}  // namespace p4lm::train
