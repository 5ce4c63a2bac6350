#include <catch2/catch.hpp>

#include <sstream>

#include <p4lm/core/progress.hpp>

TEST_CASE("Progress prints plain lines with rate, ETA and a final total when not on a terminal",
          "[core][progress]") {
  std::ostringstream out;
  {
    p4lm::Progress progress("train", 4, "steps", {&out, false, std::chrono::milliseconds(0), true});
    progress.advance(1, "loss 2.5");
    progress.advance(3);
  }
  const auto text = out.str();
  CHECK_THAT(text, Catch::Contains("train 1/4 steps (25%)"));
  CHECK_THAT(text, Catch::Contains("ETA"));
  CHECK_THAT(text, Catch::Contains("| loss 2.5"));
  CHECK_THAT(text, Catch::Contains("4/4 steps (100%)"));
  CHECK_THAT(text, Catch::Contains(" in "));
  CHECK(text.find('\r') == std::string::npos);
}

TEST_CASE("Progress redraws one line on a terminal", "[core][progress]") {
  std::ostringstream out;
  p4lm::Progress progress("gen", 0, "tok", {&out, true, std::chrono::milliseconds(0), true});
  progress.advance(5);
  progress.finish();
  CHECK_THAT(out.str(), Catch::Contains("\rgen 5 tok"));
}

TEST_CASE("durations read like a person writes them", "[core][progress]") {
  CHECK(p4lm::Progress::format_duration(12.34) == "12.3s");
  CHECK(p4lm::Progress::format_duration(187) == "3m07s");
  CHECK(p4lm::Progress::format_duration(3720) == "1h02m");
}
