#pragma once
// Progress of a long job: a redrawn bar with rate and ETA on a terminal, plain timestamped lines
// (at most one every `interval`) when the output is a file or a pipe, so logs stay readable.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace p4lm {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::ostream* out = &std::cerr;
    bool interactive = ::isatty(STDERR_FILENO) != 0;  // bar when stderr is a terminal
    std::chrono::milliseconds interval{2000};         // plain-line cadence
    bool enabled = true;
  };

  // total == 0 means unknown: the rate is shown, no ETA.
  Progress(std::string label, std::uint64_t total, std::string unit = "it")
      : Progress(std::move(label), total, std::move(unit), Options{}) {}
  Progress(std::string label, std::uint64_t total, std::string unit, Options options)
      : label_(std::move(label)),
        unit_(std::move(unit)),
        total_(total),
        options_(options),
        start_(Clock::now()),
        last_print_(start_) {}

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() {
    if (!finished_) finish();
  }

  // Adds n units of work; `note` (for example "loss 2.31") is shown after the rate.
  void advance(std::uint64_t n = 1, const std::string& note = {}) {
    done_ += n;
    if (!note.empty()) note_ = note;
    const auto now = Clock::now();
    const auto cadence = options_.interactive ? std::chrono::milliseconds(100) : options_.interval;
    if (now - last_print_ >= cadence || (total_ != 0 && done_ >= total_)) {
      last_print_ = now;
      print(now, false);
    }
  }

  void set_note(std::string note) { note_ = std::move(note); }

  // Prints the final line (total time and mean rate).
  void finish() {
    finished_ = true;
    print(Clock::now(), true);
  }

  std::uint64_t done() const noexcept { return done_; }
  double elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  double rate() const {
    const double s = elapsed_seconds();
    return s > 0 ? static_cast<double>(done_) / s : 0.0;
  }

  // "1h02m", "3m07s", "12.3s": what the bar shows for the elapsed time and the ETA.
  static std::string format_duration(double seconds) {
    std::ostringstream os;
    if (seconds < 60) {
      os << std::fixed << std::setprecision(1) << seconds << 's';
    } else if (seconds < 3600) {
      const auto s = static_cast<long>(seconds);
      os << s / 60 << 'm' << std::setw(2) << std::setfill('0') << s % 60 << 's';
    } else {
      const auto s = static_cast<long>(seconds);
      os << s / 3600 << 'h' << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << 'm';
    }
    return os.str();
  }

 private:
  void print(Clock::time_point now, bool final_line) {
    if (!options_.enabled || options_.out == nullptr) return;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double per_second = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
    std::ostringstream line;
    line << label_ << ' ';
    if (total_ != 0) {
      const double fraction = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
      if (options_.interactive) {
        constexpr int width = 24;
        const int filled = static_cast<int>(fraction * width);
        line << '[' << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
      }
      line << done_ << '/' << total_ << ' ' << unit_ << " (" << std::fixed << std::setprecision(0)
           << 100.0 * fraction << "%)";
    } else {
      line << done_ << ' ' << unit_;
    }
    line << ' ' << std::setprecision(per_second < 10 ? 2 : 0) << std::fixed << per_second << ' ' << unit_
         << "/s";
    if (final_line) {
      line << " in " << format_duration(elapsed);
    } else if (total_ != 0 && per_second > 0 && done_ < total_) {
      line << " ETA " << format_duration(static_cast<double>(total_ - done_) / per_second);
    }
    if (!note_.empty()) line << " | " << note_;
    auto& out = *options_.out;
    if (options_.interactive) {
      out << '\r' << line.str() << "\x1b[K";  // redraw in place, clear the rest of the line
      if (final_line) out << '\n';
    } else {
      out << line.str() << '\n';
    }
    out.flush();
  }

  std::string label_;
  std::string unit_;
  std::uint64_t total_;
  Options options_;
  Clock::time_point start_;
  Clock::time_point last_print_;
  std::uint64_t done_ = 0;
  std::string note_;
  bool finished_ = false;
};

}  // namespace p4lm
