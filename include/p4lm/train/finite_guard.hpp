#pragma once
// The non-finite guard of every trainer: the first NaN or infinity in a step's loss, its gradient
// norm or a parameter after the update stops the run with an error naming the step and the tensor,
// before anything of that step is logged or checkpointed, so the last checkpoint on disk is the last
// good state (docs/reliability.md). Diverging runs fail loudly instead of writing NaN models.
//
//   p4lm::train::FiniteGuard::loss(step, loss);                 // throws NonFiniteError
//   p4lm::train::FiniteGuard::gradients(step, norm, params);    // names the first non-finite gradient
//   p4lm::train::FiniteGuard::parameters(step, params);         // names the first non-finite value

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "p4lm/core/error.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::train {

// A loss, gradient or parameter became NaN or infinite; step() is the 1-based optimizer step that
// produced it and tensor() what holds it ("loss", or a parameter's name).
class NonFiniteError : public Error {
 public:
  NonFiniteError(std::size_t step, std::string tensor, const std::string& what)
      : Error(what), step_(step), tensor_(std::move(tensor)) {}
  std::size_t step() const noexcept { return step_; }
  const std::string& tensor() const noexcept { return tensor_; }

 private:
  std::size_t step_;
  std::string tensor_;
};

struct FiniteGuard {
  static constexpr const char* advice =
      "; the last checkpoint holds the last good state (lower the learning rate or check the data)";

  static void loss(std::size_t step, double value) {
    if (!std::isfinite(value))
      throw NonFiniteError(step, "loss",
                           detail::concat("step ", step, ": the training loss is ", value, advice));
  }

  // `norm` is the global gradient norm the optimizer measured (before clipping).
  template <class T>
  static void gradients(std::size_t step, double norm, std::span<const Parameter<T>> params) {
    if (std::isfinite(norm)) return;
    for (const auto& p : params)
      if (p.trainable && first_bad(p.grad))
        throw NonFiniteError(step, p.name,
                             detail::concat("step ", step, ": the gradient norm is ", norm,
                                            ": the gradient of '", p.name, "' is not finite", advice));
    throw NonFiniteError(step, "gradient norm",
                         detail::concat("step ", step, ": the gradient norm is ", norm, advice));
  }

  template <class T>
  static void parameters(std::size_t step, std::span<const Parameter<T>> params) {
    for (const auto& p : params)
      if (const auto at = first_bad(p.value))
        throw NonFiniteError(step, p.name,
                             detail::concat("step ", step, ": parameter '", p.name, "' holds ",
                                            static_cast<double>(p.value.data()[*at]), " at element ", *at,
                                            " after the update", advice));
  }

  // Index of the first NaN/Inf element of a view: one pass over the exponent bits (vectorizes), a
  // second only when something is wrong.
  template <class View>
  static std::optional<std::size_t> first_bad(const View& v) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(v.data())>>;
    using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    constexpr Bits exponent = sizeof(T) == 8 ? Bits(0x7ff0000000000000ULL) : Bits(0x7f800000U);
    const T* d = v.data();
    const std::size_t n = v.numel();
    bool bad = false;
    for (std::size_t i = 0; i < n; ++i) bad |= (std::bit_cast<Bits>(d[i]) & exponent) == exponent;
    if (!bad) return std::nullopt;
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(static_cast<double>(d[i]))) return i;
    return std::nullopt;
  }
};

}  // namespace p4lm::train
