#include <catch2/catch.hpp>

#include <filesystem>
#include <limits>

#include <p4lm/core/metrics.hpp>
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
