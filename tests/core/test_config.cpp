#include <catch2/catch.hpp>

#include <p4lm/core/config.hpp>

namespace {
struct SampleConfig {
  p4lm::Param<int> steps{100, "optimizer steps"};
  p4lm::Param<double> learning_rate{3e-4, "peak learning rate"};
  p4lm::Param<bool> resume{false, "continue from the last checkpoint"};
  p4lm::Param<std::string> out{"runs/x", "output folder"};
  p4lm::Param<std::vector<int>> ids{{}, "token ids"};
};
}  // namespace
BOOST_HANA_ADAPT_STRUCT(SampleConfig, steps, learning_rate, resume, out, ids);

using p4lm::parse_flags;

TEST_CASE("parse_flags reads every form of flag into the reflected struct", "[core][config]") {
  const std::vector<std::string> args{"--steps", "7", "--learning-rate=0.5", "--resume", "--ids", "1,2,3"};
  const auto config = parse_flags<SampleConfig>(args);
  CHECK(*config.steps == 7);
  CHECK(*config.learning_rate == 0.5);
  CHECK(*config.resume);
  CHECK(*config.out == "runs/x");
  CHECK(*config.ids == std::vector<int>{1, 2, 3});
  const std::vector<std::string> negated{"--resume", "--no-resume", "--learning_rate", "1e-3"};
  const auto second = parse_flags<SampleConfig>(negated);
  CHECK_FALSE(*second.resume);
  CHECK(*second.learning_rate == 1e-3);
}

TEST_CASE("bad flags are usage errors that name the flag", "[core][config]") {
  using Args = std::vector<std::string>;
  CHECK_THROWS_WITH(parse_flags<SampleConfig>(Args{"--stepz", "1"}), Catch::Contains("--stepz"));
  CHECK_THROWS_WITH(parse_flags<SampleConfig>(Args{"--steps", "ten"}),
                    Catch::Contains("--steps: expected int"));
  CHECK_THROWS_WITH(parse_flags<SampleConfig>(Args{"--steps"}), Catch::Contains("needs a value"));
  CHECK_THROWS_AS(parse_flags<SampleConfig>(Args{"positional"}), p4lm::UsageError);
  CHECK_THROWS_AS(parse_flags<SampleConfig>(Args{"--steps", "12x"}), p4lm::UsageError);
}

TEST_CASE("help and JSON come from the same definition", "[core][config]") {
  const auto help = p4lm::flags_help<SampleConfig>();
  CHECK_THAT(help, Catch::Contains("--learning-rate <number>"));
  CHECK_THAT(help, Catch::Contains("peak learning rate (default 0.0003)"));
  SampleConfig config;
  config.steps = 42;
  const auto json = p4lm::to_json(config);
  CHECK(json["steps"] == 42);
  CHECK(json["out"] == "runs/x");
  const auto back = p4lm::from_json<SampleConfig>(json);
  CHECK(*back.steps == 42);
  CHECK_THROWS_WITH(p4lm::from_json<SampleConfig>(nlohmann::json{{"nope", 1}}), Catch::Contains("'nope'"));
}
