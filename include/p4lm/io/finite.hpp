#pragma once
// The one check every loader runs on the values it hands to a model: a NaN or an infinity in a
// weight would only show up later as NaN logits, far from its cause, so it is refused at load time
// with the file, the tensor and the first bad element named.
//
//   p4lm::io::require_finite(values, "model.safetensors", "wte.weight");

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "p4lm/core/error.hpp"

namespace p4lm::io {

// Index of the first element that is NaN or infinite, or values.size() if all are finite.
template <class T>
std::size_t first_non_finite(std::span<const T> values) noexcept {
  static_assert(std::is_floating_point_v<T>);
  // One branch-free pass (vectorizes): v * 0 is 0 for finite v and NaN otherwise, so the sum is NaN
  // exactly when some element is not finite; only then is the culprit searched for.
  T sum = 0;
  for (const T v : values) sum += v * T(0);  // NaN or inf times 0 is NaN; finite times 0 is 0
  if (std::isfinite(sum)) return values.size();
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return i;
  return values.size();
}

// ParseError naming the file, the tensor, the element and its value if any element is not finite.
template <class T>
void require_finite(std::span<const T> values, const std::filesystem::path& file, std::string_view tensor) {
  const std::size_t i = first_non_finite(values);
  if (i == values.size()) return;
  const T v = values[i];
  throw ParseError(file, 0, tensor,
                   "element " + std::to_string(i) + " of " + std::to_string(values.size()) + " is " +
                       (std::isnan(v) ? "NaN"
                        : v > 0       ? "+inf"
                                      : "-inf") +
                       ": weights must be finite (a diverged run?)");
}

}  // namespace p4lm::io
