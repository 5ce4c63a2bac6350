#pragma once
// ParameterSet<B, T>: every parameter of a model in ONE allocation and every gradient in another
// (llm.c's layout), each a named Parameter view into them. Modules (Linear, norms, MLP, Attention,
// Block) do not own memory: they hold pointers to the Parameter records of the set that owns them.
//
//   std::vector<ParameterSpec> specs = {{"fc.weight", {4, 3}, true}, {"fc.bias", {4}, false}};
//   nn::ParameterSet<backend::cpu> set(specs, "MyModel");
//   nn::Linear<backend::cpu> fc{&set["fc.weight"], &set["fc.bias"]};
//   set.zero_grad();  ...  set.freeze("fc.*");
//
// Each tensor starts on a 64-byte boundary (16 floats), so SIMD loads of a parameter are aligned and
// two parameters never share a cache line. Moving a set keeps every view valid (the storage moves with
// its buffer); copying is explicit (copy_values_from), so a frozen reference model is a deliberate act.

#include <algorithm>
#include <cstddef>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/backend/tensors.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::nn {

template <Backend B, Scalar T = float>
class ParameterSet {
 public:
  using View = TensorView<B, T>;
  using Param = Parameter<T, B>;

  ParameterSet() = default;
  // owner names the model in error messages ("CausalLM<llama>: no parameter named ...").
  explicit ParameterSet(std::span<const ParameterSpec> specs, std::string owner = "model")
      : owner_(std::move(owner)) {
    std::size_t total = 0;
    for (const auto& s : specs) total += padded(s.shape.numel());
    values_ = Tensor<B, T>(Shape{total}, T(0));
    grads_ = Tensor<B, T>(Shape{total}, T(0));
    std::size_t offset = 0;
    params_.reserve(specs.size());
    for (const auto& s : specs) {
      if (find(s.name)) fail<InvalidArgument>(owner_, ": parameter '", s.name, "' declared twice");
      params_.push_back({s.name, View(values_.data() + offset, s.shape),
                         View(grads_.data() + offset, s.shape), true, s.decay});
      offset += padded(s.shape.numel());
    }
  }

  ParameterSet(const ParameterSet&) = delete;
  ParameterSet& operator=(const ParameterSet&) = delete;
  ParameterSet(ParameterSet&&) noexcept = default;
  ParameterSet& operator=(ParameterSet&&) noexcept = default;

  std::span<Param> parameters() noexcept { return params_; }
  std::span<const Param> parameters() const noexcept { return params_; }
  std::size_t size() const noexcept { return params_.size(); }

  Param* find(std::string_view name) noexcept {
    for (auto& p : params_)
      if (p.name == name) return &p;
    return nullptr;
  }
  const Param* find(std::string_view name) const noexcept {
    return const_cast<ParameterSet*>(this)->find(name);
  }
  Param& operator[](std::string_view name) {
    if (Param* p = find(name)) return *p;
    fail<InvalidArgument>(owner_, ": no parameter named '", name, "'");
  }
  const Param& operator[](std::string_view name) const { return const_cast<ParameterSet&>(*this)[name]; }
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  // Scalars held by the parameters (alignment padding excluded).
  std::size_t numel() const noexcept {
    std::size_t n = 0;
    for (const auto& p : params_) n += p.value.numel();
    return n;
  }
  // The whole allocations, padding included (always zero).
  View values() noexcept { return values_; }
  View grads() noexcept { return grads_; }
  const View& values() const noexcept { return values_; }

  void zero_grad() { grads_.zero(); }

  // Freezing by name: glob (`*`, `?`) or std::regex; returns how many parameters matched.
  std::size_t freeze(std::string_view glob) { return set_trainable(parameters(), glob, false); }
  std::size_t unfreeze(std::string_view glob) { return set_trainable(parameters(), glob, true); }
  std::size_t freeze(const std::regex& re) { return set_trainable(parameters(), re, false); }
  std::size_t unfreeze(const std::regex& re) { return set_trainable(parameters(), re, true); }

  // Values and trainable flags of a set with the same layout (a clone's source).
  void copy_values_from(const ParameterSet& other) {
    if (other.params_.size() != params_.size() || other.values_.numel() != values_.numel())
      fail<InvalidArgument>(owner_, ": cannot copy parameters of a set with another layout");
    copy(View(values_), other.values_.view());
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].trainable = other.params_[i].trainable;
  }

 private:
  static constexpr std::size_t padded(std::size_t n) { return (n + 15) / 16 * 16; }

  std::string owner_ = "model";
  Tensor<B, T> values_, grads_;
  std::vector<Param> params_;
};

// The gradient a module accumulates into: the parameter's, or none ({}) when it is frozen or absent.
template <class T, class B>
TensorView<B, T> grad_of(const Parameter<T, B>* p) noexcept {
  return p && p->trainable ? p->grad : TensorView<B, T>{};
}
template <class T, class B>
TensorView<B, T> value_of(const Parameter<T, B>* p) noexcept {
  return p ? p->value : TensorView<B, T>{};
}

}  // namespace p4lm::nn
