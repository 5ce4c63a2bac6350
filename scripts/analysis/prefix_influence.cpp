// Does the LM see its prefix? Two random prefixes, the same text: the largest logit difference at
// text positions near and far from the prefix (docs/results.md, "not a masking bug").
//   g++ -std=c++20 -O2 -march=native -fopenmp -DXTENSOR_USE_XSIMD -Iinclude \
//       scripts/analysis/prefix_influence.cpp -o /tmp/prefix_influence -lopenblas
//   /tmp/prefix_influence R/cf_seed1/model.safetensors
#include <iostream>
#include <p4lm/p4lm.hpp>
using namespace p4lm;
int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: prefix_influence MODEL.safetensors\n";
    return 2;
  }
  auto any = load_any_lm(std::string(argv[1]));
  auto& lm = std::get<LlamaLM<float>>(any);
  const std::size_t C = lm.config().d_model;
  for (std::size_t T : {8, 40, 70, 150, 300}) {
    CpuTensor<std::int32_t> ids(Shape{1, T});
    for (std::size_t t = 0; t < T; ++t) ids.data()[t] = static_cast<std::int32_t>(3 + (t * 37) % 500);
    Rng rng(1);
    CpuTensor<float> pa(Shape{1, 3, C}), pb(Shape{1, 3, C});
    for (auto& x : pa.span()) x = float(rng.normal());
    for (auto& x : pb.span()) x = float(rng.normal());
    lm.forward({.ids = ids.view(), .prefix = pa.view()});
    CpuTensor<float> la(lm.logits());
    lm.forward({.ids = ids.view(), .prefix = pb.view()});
    CpuTensor<float> lb(lm.logits());
    const std::size_t V = lm.config().vocab_size;
    for (std::size_t s : {std::size_t(3), std::size_t(3 + T / 2), std::size_t(3 + T - 1)}) {
      double d = 0;
      for (std::size_t v = 0; v < V; ++v)
        d = std::max(d, double(std::abs(la.data()[s * V + v] - lb.data()[s * V + v])));
      std::cout << "T " << T << " pos " << s << " max |logit diff| " << d << "\n";
    }
  }
}
