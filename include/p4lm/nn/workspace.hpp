#pragma once
// Take<B, T>: hands out activation views from one workspace in two passes, so a model's activations
// live in one allocation sized once per shape (llm.c's layout): the first pass (base == nullptr)
// only counts, the owner sizes its Tensor to `off`, the second pass hands out the real views. Every
// view starts on a 64-byte boundary (16 floats).
//
//   for (int pass = 0; pass < 2; ++pass) {
//     nn::Take<B, T> take{pass ? work.data() : nullptr};
//     acts = block.layout(take, batch, seq, seq);
//     if (!pass) work.resize(Shape{take.off});
//   }

#include <cstddef>

#include "p4lm/core/tensor_view.hpp"

namespace p4lm::nn {

template <Backend B, class T = float>
struct Take {
  T* base = nullptr;
  std::size_t off = 0;  // elements handed out so far (padding included)
  TensorView<B, T> operator()(Shape s) {
    TensorView<B, T> v(base ? base + off : nullptr, s);
    off += (s.numel() + 15) / 16 * 16;
    return v;
  }
};

}  // namespace p4lm::nn
