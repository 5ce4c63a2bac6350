#pragma once
// A named trainable tensor as modules expose it: (name, value view, gradient view, trainable, decay).
// Names are stable (checkpoints, optimizer state and freezing all key on them); the views point into
// the module's single parameter and gradient allocations.
//
//   for (auto& p : model.parameters()) std::cout << p.name << ' ' << p.value.shape() << '\n';
//   set_trainable(model.parameters(), "h.*", false);   // freeze every transformer block

#include <cstddef>
#include <regex>
#include <span>
#include <string>
#include <string_view>

#include "p4lm/core/tensor_view.hpp"

namespace p4lm {

template <class T = float, Backend B = backend::cpu>
struct Parameter {
  using backend_type = B;
  using value_type = T;
  std::string name;
  TensorView<B, T> value;
  TensorView<B, T> grad;
  bool trainable = true;
  bool decay = true;  // AdamW applies weight decay (matrices); biases and norm gains do not
};

// One parameter tensor a module or architecture declares: its stable name, shape, and whether AdamW
// decays it (matrices yes; biases and norm gains no, as in GPT-2/nanoGPT practice).
struct ParameterSpec {
  std::string name;
  Shape shape;
  bool decay;
};

// Shell-style glob: `*` matches any run of characters (dots included), `?` one character.
inline bool glob_match(std::string_view pattern, std::string_view name) {
  std::size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Sets `trainable` on every parameter whose name matches the glob; returns how many matched.
template <class T, class B>
std::size_t set_trainable(std::span<Parameter<T, B>> params, std::string_view glob, bool trainable) {
  std::size_t matched = 0;
  for (auto& p : params)
    if (glob_match(glob, p.name)) p.trainable = trainable, ++matched;
  return matched;
}

// Same with a regular expression (std::regex_match: the whole name must match).
template <class T, class B>
std::size_t set_trainable(std::span<Parameter<T, B>> params, const std::regex& re, bool trainable) {
  std::size_t matched = 0;
  for (auto& p : params)
    if (std::regex_match(p.name, re)) p.trainable = trainable, ++matched;
  return matched;
}

}  // namespace p4lm
