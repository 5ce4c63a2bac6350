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

#include "p4lm/core/tensor.hpp"

namespace p4lm {

template <class T = float>
struct Parameter {
  std::string name;
  TensorView<backend::cpu, T> value;
  TensorView<backend::cpu, T> grad;
  bool trainable = true;
  bool decay = true;  // AdamW applies weight decay (matrices); biases and norm gains do not
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
template <class T>
std::size_t set_trainable(std::span<Parameter<T>> params, std::string_view glob, bool trainable) {
  std::size_t matched = 0;
  for (auto& p : params)
    if (glob_match(glob, p.name)) p.trainable = trainable, ++matched;
  return matched;
}

// Same with a regular expression (std::regex_match: the whole name must match).
template <class T>
std::size_t set_trainable(std::span<Parameter<T>> params, const std::regex& re, bool trainable) {
  std::size_t matched = 0;
  for (auto& p : params)
    if (std::regex_match(p.name, re)) p.trainable = trainable, ++matched;
  return matched;
}

}  // namespace p4lm
