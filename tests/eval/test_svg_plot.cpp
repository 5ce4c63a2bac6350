// The SVG line-plot writer: well-formed output, one polyline per unbroken run, escaping, ticks,
// points inside the plot area, errors for unplottable input.

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <regex>
#include <string>

#include "p4lm/eval/svg_plot.hpp"
#include "p4lm/io/atomic_file.hpp"

namespace {
std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("svg_plot: two series, escaping, legend", "[eval][svg]") {
  using p4lm::eval::Series;
  const std::vector<Series> series{{"train <loss> & co", {0, 1, 2, 3}, {3.0, 2.0, 1.5, 1.2}},
                                   {"held-out", {0, 2}, {3.1, 1.9}, "#000000", true}};
  const auto svg =
      p4lm::eval::line_plot_svg(series, {.title = "SFT \"stage 1\"", .x_label = "step", .y_label = "loss"});
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(count(svg, "<polyline") == 2);
  CHECK(svg.find("train &lt;loss&gt; &amp; co") != std::string::npos);
  CHECK(svg.find("SFT &quot;stage 1&quot;") != std::string::npos);
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  CHECK(svg.find("<loss>") == std::string::npos);
  // Every polyline point lies inside the 640x400 canvas.
  const std::regex point(R"((-?[0-9.e+-]+),(-?[0-9.e+-]+))");
  const std::regex polyline("points=\"([^\"]*)\"");
  std::size_t points = 0;
  for (std::sregex_iterator it(svg.begin(), svg.end(), polyline), end; it != end; ++it) {
    const std::string list = (*it)[1];
    for (std::sregex_iterator p(list.begin(), list.end(), point); p != end; ++p) {
      const double x = std::stod((*p)[1]), y = std::stod((*p)[2]);
      CHECK(x >= 0);
      CHECK(x <= 640);
      CHECK(y >= 0);
      CHECK(y <= 400);
      ++points;
    }
  }
  CHECK(points == 6);
  // Deterministic.
  CHECK(svg == p4lm::eval::line_plot_svg(series,
                                         {.title = "SFT \"stage 1\"", .x_label = "step", .y_label = "loss"}));
}

TEST_CASE("svg_plot: non-finite points break the line; log scale skips non-positive values", "[eval][svg]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<p4lm::eval::Series> s{{"a", {0, 1, 2, 3, 4}, {1, 2, nan, 4, 5}}};
  CHECK(count(p4lm::eval::line_plot_svg(s), "<polyline") == 2);
  const std::vector<p4lm::eval::Series> logs{{"b", {0, 1, 2}, {0.0, 10.0, 100.0}}};
  const auto svg = p4lm::eval::line_plot_svg(logs, {.y_label = "v", .log_y = true});
  CHECK(count(svg, "<polyline") == 1);
  CHECK(svg.find("(log scale)") != std::string::npos);
  // A constant series still gets a visible range.
  const std::vector<p4lm::eval::Series> flat{{"c", {5}, {2.0}}};
  CHECK(count(p4lm::eval::line_plot_svg(flat), "<polyline") == 1);
}

TEST_CASE("svg_plot: nice ticks", "[eval][svg]") {
  const auto t = p4lm::eval::detail::nice_ticks(0.0, 1000.0);
  REQUIRE(t.size() >= 4);
  CHECK(t.front() == 0.0);
  CHECK(t[1] == 200.0);
  const auto u = p4lm::eval::detail::nice_ticks(2.13, 2.58);
  for (double v : u) {
    CHECK(v >= 2.13 - 1e-12);
    CHECK(v <= 2.58 + 1e-12);
  }
  CHECK(u.size() >= 3);
}

TEST_CASE("svg_plot: errors and the atomic writer", "[eval][svg]") {
  const std::vector<p4lm::eval::Series> mismatched{{"a", {0, 1}, {1}}};
  CHECK_THROWS_AS(p4lm::eval::line_plot_svg(mismatched), p4lm::InvalidArgument);
  const std::vector<p4lm::eval::Series> empty{{"a", {}, {}}};
  CHECK_THROWS_AS(p4lm::eval::line_plot_svg(empty), p4lm::InvalidArgument);
  const auto dir = std::filesystem::temp_directory_path() / "p4lm_test_svg_plot";
  std::filesystem::remove_all(dir);
  const std::vector<p4lm::eval::Series> s{{"a", {0, 1}, {1, 2}}};
  p4lm::eval::write_line_plot(dir / "sub" / "plot.svg", s);
  CHECK(p4lm::io::read_file(dir / "sub" / "plot.svg") == p4lm::eval::line_plot_svg(s));
  std::filesystem::remove_all(dir);
}
