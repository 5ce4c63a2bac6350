#pragma once
// The flags of bench_lm_train and of its libtorch peer bench_lm_train_torch, parsed by one function so
// that the two programs always time the same model shape.

#include <cstddef>
#include <functional>
#include <iostream>
#include <string>

struct LmTrainArgs {
  std::size_t batch = 4, seq = 64, steps = 5, warmup = 1, layers = 12, width = 768, vocab = 50257;
  std::string arch = "gpt2";
  bool json = false;

  // `extra` handles a program's own switches (returns whether it knew the flag). On an unknown flag
  // prints `usage` to stderr and returns false.
  bool parse(int argc, char** argv, const std::string& usage,
             const std::function<bool(const std::string&)>& extra = {}) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const bool has_value = i + 1 < argc;
      auto next = [&] { return static_cast<std::size_t>(std::stoull(argv[++i])); };
      if (a == "--batch" && has_value)
        batch = next();
      else if (a == "--seq" && has_value)
        seq = next();
      else if (a == "--steps" && has_value)
        steps = next();
      else if (a == "--warmup" && has_value)
        warmup = next();
      else if (a == "--layers" && has_value)
        layers = next();
      else if (a == "--width" && has_value)
        width = next();
      else if (a == "--vocab" && has_value)
        vocab = next();
      else if (a == "--arch" && has_value)
        arch = argv[++i];
      else if (a == "--json")
        json = true;
      else if (!(extra && extra(a))) {
        std::cerr << usage << '\n';
        return false;
      }
    }
    return true;
  }
};
