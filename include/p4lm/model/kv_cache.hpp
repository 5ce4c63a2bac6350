#pragma once
// Key/value cache for incremental decoding: per layer, the (rotated) keys and the values of every
// position seen so far, for a batch of sequences that may each be at a different length.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "p4lm/backend/tensors.hpp"
#include "p4lm/model/arch.hpp"

namespace p4lm {

template <Scalar T = float, Backend B = backend::cpu>
class KVCache {
 public:
  KVCache() = default;
  // Room for `batch` sequences of up to `capacity` positions each (prefix + prompt + generated).
  KVCache(const ModelConfig& config, std::size_t batch, std::size_t capacity) {
    reserve(config, batch, capacity);
  }

  // (Re)sizes for a batch and capacity; allocates only when the element count grows. Empties the cache.
  void reserve(const ModelConfig& config, std::size_t batch, std::size_t capacity) {
    layers_ = config.n_layers, batch_ = batch, capacity_ = capacity;
    kv_heads_ = config.kv_heads(), head_dim_ = config.head_dim();
    const Shape s{layers_, batch_ * capacity_, kv_heads_, head_dim_};
    k_.resize(s);
    v_.resize(s);
    lengths_.assign(batch_, 0);
  }
  void clear() { std::fill(lengths_.begin(), lengths_.end(), 0); }

  std::size_t batch() const noexcept { return batch_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Positions filled for sequence b.
  std::int32_t length(std::size_t b) const { return lengths_.at(b); }
  std::vector<std::int32_t>& lengths() noexcept { return lengths_; }
  const std::vector<std::int32_t>& lengths() const noexcept { return lengths_; }

  // Layer l's keys / values as (B, capacity, Hkv, D).
  TensorView<B, T> keys(std::size_t l) { return layer(k_, l); }
  TensorView<B, T> values(std::size_t l) { return layer(v_, l); }

 private:
  TensorView<B, T> layer(Tensor<B, T>& t, std::size_t l) {
    const std::size_t per = batch_ * capacity_ * kv_heads_ * head_dim_;
    return TensorView<B, T>(t.data() + l * per, Shape{batch_, capacity_, kv_heads_, head_dim_});
  }

  std::size_t layers_ = 0, batch_ = 0, capacity_ = 0, kv_heads_ = 0, head_dim_ = 0;
  Tensor<B, T> k_, v_;
  std::vector<std::int32_t> lengths_;
};

}  // namespace p4lm
