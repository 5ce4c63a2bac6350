#include <catch2/catch.hpp>

#include <p4lm/core/error.hpp>

TEST_CASE("ParseError names file, line and field", "[core][error]") {
  const p4lm::ParseError error("ratings.csv", 12, "rating", "expected a number, got 'x'");
  CHECK(std::string(error.what()) == "ratings.csv:12: field 'rating': expected a number, got 'x'");
  CHECK(error.line() == 12);
  CHECK(error.field() == "rating");
}

TEST_CASE("fail<E> throws E with the streamed message, catchable as p4lm::Error", "[core][error]") {
  CHECK_THROWS_AS(p4lm::fail<p4lm::ShapeError>("shape ", 3, "x", 4), p4lm::InvalidArgument);
  CHECK_THROWS_WITH(p4lm::fail<p4lm::ShapeError>("shape ", 3, "x", 4), "shape 3x4");
  CHECK_THROWS_AS(p4lm::fail<p4lm::DataNotFound>("x"), p4lm::Error);
}
