// dist/gradient_reducer.hpp: the trainable gradients become their mean over the ranks, through
// buckets smaller than a tensor and spanning tensors; frozen ones stay; broadcast_parameters makes
// every replica rank 0's.

#include <catch2/catch.hpp>

#include <vector>

#include "p4lm/core/tensor.hpp"
#include "p4lm/dist/gradient_reducer.hpp"

namespace {

struct ThreeTensors {
  p4lm::CpuTensor<float> values{p4lm::Shape{15}}, grads{p4lm::Shape{15}};
  std::vector<p4lm::Parameter<float>> params;
  ThreeTensors() {
    const std::size_t sizes[] = {5, 1, 9};
    std::size_t at = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      params.push_back(
          {"p" + std::to_string(k),
           p4lm::TensorView<p4lm::backend::cpu, float>(values.data() + at, p4lm::Shape{sizes[k]}),
           p4lm::TensorView<p4lm::backend::cpu, float>(grads.data() + at, p4lm::Shape{sizes[k]})});
      at += sizes[k];
    }
  }
};

}  // namespace

TEST_CASE("gradient reducer: gradients become the mean over the ranks, frozen ones stay", "[dist][reducer]") {
  const auto c = p4lm::dist::world();
  const int n = c.size(), r = c.rank();
  for (std::size_t bucket_bytes : {4 * sizeof(float), 7 * sizeof(float), std::size_t{1} << 20}) {
    ThreeTensors m;
    m.params[1].trainable = false;
    for (std::size_t i = 0; i < 15; ++i) m.grads.data()[i] = float(100 * r) + float(i);
    p4lm::dist::GradientReducer<float> reduce(c, bucket_bytes);
    const std::size_t reduced = reduce.average(m.params);
    CHECK(reduced == (c.distributed() ? 14u : 0u));
    CHECK(p4lm::dist::GradientReducer<float>::reduced_size(m.params) == 14);
    const float mean_rank = float(n - 1) / 2;  // mean of 0 .. n-1
    for (std::size_t i = 0; i < 15; ++i) {
      INFO("bucket " << bucket_bytes << " B, value " << i);
      const float expected = i == 5 ? float(100 * r) + 5.0f : 100 * mean_rank + float(i);
      CHECK(m.grads.data()[i] == Approx(expected));
    }
  }
}

TEST_CASE("gradient reducer: broadcast_parameters gives every rank rank 0's values", "[dist][reducer]") {
  const auto c = p4lm::dist::world();
  ThreeTensors m;
  m.params[2].trainable = false;  // frozen values are sent too
  for (std::size_t i = 0; i < 15; ++i) m.values.data()[i] = float(c.rank() * 1000) + float(i);
  p4lm::dist::broadcast_parameters<float>(c, m.params);
  for (std::size_t i = 0; i < 15; ++i) CHECK(m.values.data()[i] == float(i));
}
