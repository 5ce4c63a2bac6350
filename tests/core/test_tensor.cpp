#include <catch2/catch.hpp>

#include <p4lm/core/tensor.hpp>

using p4lm::CpuTensor;
using p4lm::Shape;

TEST_CASE("Tensor owns row-major storage and is a view of it", "[core][tensor]") {
  CpuTensor<float> t(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.numel() == 6);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t[1].shape() == Shape{3});
  CHECK(t[1].data()[2] == 6);
  CHECK(t.rows(1, 2).data() == t.data() + 3);
  CHECK(t.reshaped(Shape{3, 2}).shape() == Shape{3, 2});
  CHECK_THROWS_WITH(t.reshaped(Shape{4}), "cannot reshape (2, 3) (6 elements) to (4)");
  CHECK_THROWS_AS(t[2], p4lm::ShapeError);
  auto x = t.xt();
  x(1, 1) = 50;  // the adaptor writes through
  CHECK(t.data()[4] == 50);
}

TEST_CASE("copies are deep, moves keep the buffer, shrinking never reallocates", "[core][tensor]") {
  CpuTensor<double> a(Shape{4}, 1.0);
  CpuTensor<double> b = a;
  b.data()[0] = 2;
  CHECK(a.data()[0] == 1);
  const double* buffer = b.data();
  CpuTensor<double> c = std::move(b);
  CHECK(c.data() == buffer);
  CHECK(b.numel() == 0);
  c.resize(Shape{2});
  CHECK(c.data() == buffer);
  CpuTensor<double> from_view(a[0].reshaped(Shape{1}));
  CHECK(from_view.shape() == Shape{1});
  CHECK_THROWS_AS(CpuTensor<float>(Shape{2}, {1.0f}), p4lm::ShapeError);
}
