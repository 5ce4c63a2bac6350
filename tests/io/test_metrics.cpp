#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <limits>

#include <p4lm/io/metrics.hpp>
#include <p4lm/io/atomic_file.hpp>

namespace fs = std::filesystem;

TEST_CASE("MetricsSink writes JSONL and CSV, appends on resume, nulls non-finite", "[core][metrics]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_metrics";
  fs::remove_all(dir);
  {
    p4lm::MetricsSink sink(dir / "m.jsonl", dir / "m.csv");
    sink.record(1, {{"loss", 2.5}, {"lr", 0.001}});
    sink.record(2, {{"loss", std::numeric_limits<double>::quiet_NaN()}, {"lr", 0.002}});
  }
  {
    p4lm::MetricsSink resumed(dir / "m.jsonl", dir / "m.csv");
    resumed.record(3, {{"loss", 1.5}, {"lr", 0.003}});
    CHECK_THROWS_WITH(resumed.record(4, {{"other", 1.0}}), Catch::Contains("CSV columns are {loss,lr}"));
  }
  CHECK(p4lm::io::read_file(dir / "m.csv") == "step,loss,lr\n1,2.5,0.001\n2,,0.002\n3,1.5,0.003\n");
  const auto jsonl = p4lm::io::read_file(dir / "m.jsonl");
  CHECK_THAT(jsonl, Catch::StartsWith("{\"loss\":2.5,\"lr\":0.001,\"step\":1}\n"));
  CHECK_THAT(jsonl, Catch::Contains("{\"loss\":null,\"lr\":0.002,\"step\":2}"));
  fs::remove_all(dir);
}

TEST_CASE("MetricsSink::drop_after removes what a killed run logged after its checkpoint",
          "[core][metrics]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_metrics_drop";
  fs::remove_all(dir);
  {
    p4lm::MetricsSink sink(dir / "m.jsonl", dir / "m.csv");
    for (long step = 10; step <= 50; step += 10) sink.record(step, {{"loss", 1.0 / step}});
  }
  p4lm::MetricsSink::drop_after(30, dir / "m.jsonl", dir / "m.csv");  // the checkpoint was at 30
  {
    p4lm::MetricsSink resumed(dir / "m.jsonl", dir / "m.csv");
    resumed.record(40, {{"loss", 0.025}});
  }
  CHECK(p4lm::io::read_file(dir / "m.csv") == "step,loss\n10,0.1\n20,0.05\n30,0.0333333333\n40,0.025\n");
  const auto jsonl = p4lm::io::read_file(dir / "m.jsonl");
  CHECK(jsonl.find("\"step\":50") == std::string::npos);
  CHECK(std::count(jsonl.begin(), jsonl.end(), '\n') == 4);
  // Missing files and nothing to drop leave everything as it is.
  p4lm::MetricsSink::drop_after(100, dir / "m.jsonl", dir / "none.csv");
  CHECK(p4lm::io::read_file(dir / "m.jsonl") == jsonl);
  fs::remove_all(dir);
}
