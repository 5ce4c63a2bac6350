#pragma once
// What PPO trains: a causal LM plus, optionally, soft tokens computed per prompt (P4LM's CF prefix).
//
// A type is a Policy when it provides
//   lm()                                  the CausalLM that samples and is scored (forward_logprobs,
//                                         backward_logprobs, hidden(), forward_cached for generation)
//   parameters()                          every trainable tensor (LM and prefix producer), stable names
//   clone()                               an independent deep copy: the frozen reference
//   prefix_length()                       soft tokens before each prompt (0: none)
//   write_prefix(out, keys)               out (B, prefix_length, C) <- the soft tokens of prompts `keys`
//   backward_prefix(dprefix, keys)        accumulates d objective / d prefix into the producer's
//                                         parameters (after lm().backward_logprobs)
// A prompt's key is opaque to PPO: the policy (which user and movie) and the reward read it.
//
// LMPolicy<LM> is the plain case: an LM alone, or an LM with a fixed table of soft tokens per key.
// PrefixedPolicy<LM, Prefix> trains a prefix producer with the LM (P4LM: the CF adapter behind the
// soft-prompt layout); the producer is any type satisfying PrefixProducer:
//   std::size_t length() const;                          soft tokens per prompt
//   void forward(View out, LM& lm, keys);                out (B, length, C) for prompts `keys`
//   void backward(LM& lm, const View& dprefix);          after forward: gradients accumulate
//   std::span<Parameter<T>> parameters();  Prefix clone() const;  void zero_grad();

#include <concepts>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::rl {

template <class P>
concept Policy = requires(P& p, const P& cp, TensorView<backend::cpu, typename P::value_type> out,
                          std::span<const std::size_t> keys) {
  typename P::value_type;
  typename P::LM;
  { p.lm() } -> std::same_as<typename P::LM&>;
  { p.parameters() } -> std::convertible_to<std::span<Parameter<typename P::value_type>>>;
  { cp.clone() } -> std::same_as<P>;
  { cp.prefix_length() } -> std::convertible_to<std::size_t>;
  p.write_prefix(out, keys);
  p.backward_prefix(out, keys);
};

// Readable failures for a type that is not a Policy (one message per missing member).
template <class P>
constexpr bool check_policy() {
  static_assert(
      requires {
        typename P::value_type;
        typename P::LM;
      },
      "p4lm::rl: a Policy names its scalar `value_type` and its language model type `LM` "
      "(see docs/rl.md, 'Policies')");
  static_assert(
      requires(P & p) { p.lm(); }, "p4lm::rl: a Policy needs `LM& lm()`, the model that samples");
  static_assert(
      requires(P & p) { p.parameters(); },
      "p4lm::rl: a Policy needs `std::span<Parameter<T>> parameters()`, every trainable tensor");
  static_assert(
      requires(const P& p) { p.clone(); },
      "p4lm::rl: a Policy needs `P clone() const`: PPO's reference is a frozen copy of it");
  static_assert(
      requires(const P& p) { p.prefix_length(); },
      "p4lm::rl: a Policy needs `std::size_t prefix_length() const` (0 when there are no soft tokens)");
  static_assert(Policy<P>,
                "p4lm::rl: a Policy needs `write_prefix(View out, std::span<const std::size_t> keys)` and "
                "`backward_prefix(const View& dprefix, std::span<const std::size_t> keys)`");
  return true;
}

template <class Model>
class LMPolicy {
 public:
  using LM = Model;
  using value_type = typename Model::value_type;
  using View = TensorView<backend::cpu, value_type>;

  explicit LMPolicy(Model lm) : lm_(std::move(lm)) {}
  // A frozen soft-token table (keys, P, C): prompt key k gets prefixes[k] before its text.
  LMPolicy(Model lm, CpuTensor<value_type> prefixes) : lm_(std::move(lm)), prefixes_(std::move(prefixes)) {
    if (prefixes_.rank() != 3 || prefixes_.dim(2) != lm_.config().d_model)
      fail<ShapeError>("LMPolicy: prefixes: expected (keys, P, ", lm_.config().d_model, "), got ",
                       prefixes_.shape());
  }

  Model& lm() noexcept { return lm_; }
  const Model& lm() const noexcept { return lm_; }
  std::span<Parameter<value_type>> parameters() noexcept { return lm_.parameters(); }
  LMPolicy clone() const {
    LMPolicy copy(lm_.clone());
    copy.prefixes_ = prefixes_;
    return copy;
  }
  std::size_t prefix_length() const noexcept { return prefixes_.rank() == 3 ? prefixes_.dim(1) : 0; }

  void write_prefix(View out, std::span<const std::size_t> keys) const {
    const std::size_t P = prefix_length(), C = lm_.config().d_model;
    if (P == 0) return;
    expect_shape("LMPolicy::write_prefix: out", out.shape(), Shape{keys.size(), P, C});
    for (std::size_t b = 0; b < keys.size(); ++b) {
      if (keys[b] >= prefixes_.dim(0))
        fail<InvalidArgument>("LMPolicy::write_prefix: key ", keys[b], " of prompt ", b, " outside the ",
                              prefixes_.dim(0), " soft-token rows");
      const value_type* src = prefixes_.data() + keys[b] * P * C;
      std::copy(src, src + P * C, out.data() + b * P * C);
    }
  }
  void backward_prefix(const View&, std::span<const std::size_t>) noexcept {}  // frozen table

 private:
  Model lm_;
  CpuTensor<value_type> prefixes_;
};

template <class X, class LM>
concept PrefixProducer = requires(X& x, const X& cx, LM& lm,
                                  TensorView<backend::cpu, typename LM::value_type> v,
                                  std::span<const std::size_t> keys) {
  { cx.length() } -> std::convertible_to<std::size_t>;
  x.forward(v, lm, keys);
  x.backward(lm, v);
  { x.parameters() } -> std::convertible_to<std::span<Parameter<typename LM::value_type>>>;
  { cx.clone() } -> std::same_as<X>;
  x.zero_grad();
};

template <class Model, class Prefix>
class PrefixedPolicy {
  static_assert(PrefixProducer<Prefix, Model>,
                "p4lm::rl::PrefixedPolicy: the prefix producer needs length(), forward(out, lm, keys), "
                "backward(lm, dprefix), parameters(), clone() and zero_grad() (see docs/rl.md, 'Policies')");

 public:
  using LM = Model;
  using value_type = typename Model::value_type;
  using View = TensorView<backend::cpu, value_type>;

  PrefixedPolicy(Model lm, Prefix prefix) : lm_(std::move(lm)), prefix_(std::move(prefix)) { sync(); }
  PrefixedPolicy(PrefixedPolicy&& o) noexcept : lm_(std::move(o.lm_)), prefix_(std::move(o.prefix_)) {
    sync();
  }
  PrefixedPolicy& operator=(PrefixedPolicy&&) = delete;
  PrefixedPolicy(const PrefixedPolicy&) = delete;

  Model& lm() noexcept { return lm_; }
  const Model& lm() const noexcept { return lm_; }
  Prefix& prefix() noexcept { return prefix_; }
  // The LM's parameters, then the producer's (trainable flags read back from the modules).
  std::span<Parameter<value_type>> parameters() {
    sync();
    return params_;
  }
  PrefixedPolicy clone() const { return PrefixedPolicy(lm_.clone(), prefix_.clone()); }
  std::size_t prefix_length() const { return prefix_.length(); }
  void write_prefix(View out, std::span<const std::size_t> keys) { prefix_.forward(out, lm_, keys); }
  void backward_prefix(const View& dprefix, std::span<const std::size_t>) { prefix_.backward(lm_, dprefix); }

 private:
  void sync() {
    params_.clear();
    for (const auto& p : lm_.parameters()) params_.push_back(p);
    for (const auto& p : prefix_.parameters()) params_.push_back(p);
  }

  Model lm_;
  Prefix prefix_;
  std::vector<Parameter<value_type>> params_;
};

}  // namespace p4lm::rl
