#pragma once
// A dependency-free SVG line plot: learning curves and metric-vs-step figures that a browser or a
// markdown viewer shows directly (docs/results.md embeds them).
//
//   p4lm::eval::Series train{"train loss", steps, losses};
//   p4lm::eval::write_line_plot("curve.svg", {train, held_out}, {.title = "SFT", .x_label = "step"});
//
// Axes get "nice" ticks (1, 2, 5 × 10^k); non-finite points break a line instead of spoiling the
// scale; every text is XML-escaped. The output depends only on the inputs (fixed number formatting),
// so figures diff cleanly between runs.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"

namespace p4lm::eval {

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::string color{};  // empty: the next colour of the palette
  bool dashed = false;
};

struct PlotOptions {
  std::string title{};
  std::string x_label{};
  std::string y_label{};
  int width = 640;
  int height = 400;
  bool log_y = false;  // y on a log10 scale (values <= 0 are skipped)
};

namespace detail {

inline std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Fixed formatting (no locale, no iostream state): "%.*g".
inline std::string num(double v, int digits = 6) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// Tick values covering [lo, hi] with a step of 1, 2 or 5 × 10^k, about `target` of them.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
  const double span = hi - lo;
  const double raw = span / std::max(1, target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

inline const char* palette(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                 "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  return colors[i % (sizeof colors / sizeof colors[0])];
}

}  // namespace detail

// The SVG document. InvalidArgument if a series' x and y differ in length or nothing is plottable.
inline std::string line_plot_svg(std::span<const Series> series, const PlotOptions& options = {}) {
  auto ty = [&](double y) { return options.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!options.log_y || y > 0);
  };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size())
      fail<InvalidArgument>("line_plot_svg: series '", s.label, "' has ", s.x.size(), " x values and ",
                            s.y.size(), " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
      }
  }
  if (!(x0 <= x1)) fail<InvalidArgument>("line_plot_svg: no finite point to plot");
  // Degenerate ranges get a unit (or relative) span; y gets 5% headroom.
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) {
    const double pad = y0 == 0 ? 0.5 : std::abs(y0) * 0.05;
    y0 -= pad, y1 += pad;
  } else {
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
  }
  const auto xt = detail::nice_ticks(x0, x1), yt = detail::nice_ticks(y0, y1);

  const double W = options.width, H = options.height;
  const double left = 64, right = 16, top = options.title.empty() ? 16 : 36, bottom = 48;
  const double legend_h = 18.0 * static_cast<double>(series.size());
  const double pw = W - left - right, ph = H - top - bottom - legend_h;
  if (pw <= 10 || ph <= 10) fail<InvalidArgument>("line_plot_svg: ", W, "x", H, " is too small for the plot");
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1.0 - (ty(y) - y0) / (y1 - y0)) * ph; };
  auto py_t = [&](double t) { return top + (1.0 - (t - y0) / (y1 - y0)) * ph; };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << options.width << "\" height=\""
    << options.height << "\" viewBox=\"0 0 " << options.width << ' ' << options.height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!options.title.empty())
    o << "<text x=\"" << detail::num(W / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << detail::xml_escape(options.title) << "</text>\n";
  // Grid and tick labels.
  for (double t : xt) {
    const auto x = detail::num(px(t));
    o << "<line x1=\"" << x << "\" y1=\"" << detail::num(top) << "\" x2=\"" << x << "\" y2=\""
      << detail::num(top + ph) << "\" stroke=\"#e0e0e0\"/>\n";
    o << "<text x=\"" << x << "\" y=\"" << detail::num(top + ph + 16) << "\" text-anchor=\"middle\">"
      << detail::num(t, 4) << "</text>\n";
  }
  for (double t : yt) {
    const auto y = detail::num(py_t(t));
    o << "<line x1=\"" << detail::num(left) << "\" y1=\"" << y << "\" x2=\"" << detail::num(left + pw)
      << "\" y2=\"" << y << "\" stroke=\"#e0e0e0\"/>\n";
    o << "<text x=\"" << detail::num(left - 6) << "\" y=\"" << detail::num(py_t(t) + 4)
      << "\" text-anchor=\"end\">" << detail::num(options.log_y ? std::pow(10.0, t) : t, 4) << "</text>\n";
  }
  o << "<rect x=\"" << detail::num(left) << "\" y=\"" << detail::num(top) << "\" width=\"" << detail::num(pw)
    << "\" height=\"" << detail::num(ph) << "\" fill=\"none\" stroke=\"black\"/>\n";
  if (!options.x_label.empty())
    o << "<text x=\"" << detail::num(left + pw / 2) << "\" y=\"" << detail::num(top + ph + 34)
      << "\" text-anchor=\"middle\">" << detail::xml_escape(options.x_label) << "</text>\n";
  if (!options.y_label.empty())
    o << "<text transform=\"translate(16 " << detail::num(top + ph / 2)
      << ") rotate(-90)\" text-anchor=\"middle\">" << detail::xml_escape(options.y_label)
      << (options.log_y ? " (log scale)" : "") << "</text>\n";
  // Lines: one polyline per unbroken run of usable points.
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string color = s.color.empty() ? detail::palette(k) : s.color;
    const std::string style = "fill=\"none\" stroke=\"" + detail::xml_escape(color) +
                              "\" stroke-width=\"1.6\"" + (s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    std::string points;
    auto flush = [&] {
      if (!points.empty()) o << "<polyline " << style << " points=\"" << points << "\"/>\n";
      points.clear();
    };
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) {
        flush();
        continue;
      }
      points += (points.empty() ? "" : " ") + detail::num(px(s.x[i])) + "," + detail::num(py(s.y[i]));
    }
    flush();
    // Legend entry below the plot.
    const double ly = top + ph + bottom + 18.0 * static_cast<double>(k) - 4;
    o << "<line x1=\"" << detail::num(left) << "\" y1=\"" << detail::num(ly) << "\" x2=\""
      << detail::num(left + 24) << "\" y2=\"" << detail::num(ly) << "\" " << style << "/>\n";
    o << "<text x=\"" << detail::num(left + 30) << "\" y=\"" << detail::num(ly + 4) << "\">"
      << detail::xml_escape(s.label) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

inline std::string line_plot_svg(const std::vector<Series>& series, const PlotOptions& options = {}) {
  return line_plot_svg(std::span<const Series>(series), options);
}

// Writes the plot atomically.
inline void write_line_plot(const std::filesystem::path& path, const std::vector<Series>& series,
                            const PlotOptions& options = {}) {
  io::write_file_atomically(path, line_plot_svg(series, options));
}

}  // namespace p4lm::eval
