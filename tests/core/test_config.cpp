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

namespace {
struct RangedConfig {
  p4lm::Param<double> lr{3e-4, "learning rate", p4lm::above(0)};
  p4lm::Param<double> temperature{1.0, "sampling temperature", p4lm::at_least(0)};
  p4lm::Param<double> fraction{0.2, "held-out share", p4lm::inside(0, 1)};
  p4lm::Param<int> threads{0, "threads (0: default)", p4lm::between(0, 1024)};
  p4lm::Param<double> scale{1.0, "any finite number"};
  p4lm::Param<std::vector<double>> regs{{0.1}, "lambdas", p4lm::above(0)};
  p4lm::Param<bool> progress{true, "progress on stderr"};
  p4lm::Param<std::string> out{"runs/x", "output folder"};
};
}  // namespace
BOOST_HANA_ADAPT_STRUCT(RangedConfig, lr, temperature, fraction, threads, scale, regs, progress, out);

TEST_CASE("numbers outside a field's range or not finite are refused, naming the flag", "[core][config]") {
  using Args = std::vector<std::string>;
  using Catch::Contains;
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--lr", "-1"}), Contains("--lr: must be > 0, got -1"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--lr", "0"}), Contains("--lr: must be > 0"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--lr", "inf"}),
                    Contains("--lr: must be a finite number"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--temperature", "nan"}),
                    Contains("--temperature: must be a finite number"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--temperature=-1"}),
                    Contains("--temperature: must be >= 0"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--fraction", "0"}),
                    Contains("--fraction: must be in (0, 1)"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--fraction", "1"}), Contains("must be in (0, 1)"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--threads", "100000"}),
                    Contains("--threads: must be in [0, 1024], got 100000"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--scale", "-inf"}),
                    Contains("--scale: must be a finite"));
  CHECK_THROWS_WITH(parse_flags<RangedConfig>(Args{"--regs", "0.1,-2"}),
                    Contains("--regs: must be > 0, got -2"));
  CHECK_THROWS_AS(parse_flags<RangedConfig>(Args{"--lr", "nan"}), p4lm::UsageError);
  // In range: accepted, including the closed ends.
  const auto ok = parse_flags<RangedConfig>(
      Args{"--lr", "1e-9", "--temperature", "0", "--fraction", "0.5", "--threads", "1024", "--scale", "-3"});
  CHECK(*ok.lr == 1e-9);
  CHECK(*ok.temperature == 0.0);
  CHECK(*ok.threads == 1024);
  CHECK_THAT(p4lm::flags_help<RangedConfig>(), Contains("(default 0.2; must be in (0, 1))"));
}

TEST_CASE("a bool flag takes a separate true/false value as --help's <bool> shows", "[core][config]") {
  using Args = std::vector<std::string>;
  CHECK_FALSE(*parse_flags<RangedConfig>(Args{"--progress", "false"}).progress);
  CHECK(*parse_flags<RangedConfig>(Args{"--progress", "true", "--lr", "0.5"}).progress);
  const auto bare = parse_flags<RangedConfig>(Args{"--progress", "--lr", "0.5"});  // next is a flag
  CHECK(*bare.progress);
  CHECK(*bare.lr == 0.5);
  CHECK_FALSE(*parse_flags<RangedConfig>(Args{"--no-progress"}).progress);
}

TEST_CASE("from_json applies the same checks and names the key", "[core][config]") {
  using Catch::Contains;
  using nlohmann::json;
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"lr", -1.0}}), Contains("key 'lr': must be > 0"));
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"threads", 1.5}}),
                    Contains("key 'threads': expected an integer, got 1.5"));
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"threads", -1}}),
                    Contains("key 'threads': must be in"));
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"threads", 1e12}}), Contains("key 'threads'"));
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"out", 3}}), Contains("key 'out': expected text"));
  CHECK_THROWS_WITH(p4lm::from_json<RangedConfig>(json{{"regs", {0.1, -1.0}}}), Contains("key 'regs'"));
  CHECK(*p4lm::from_json<RangedConfig>(json{{"threads", 8}, {"lr", 0.1}}).threads == 8);
}

TEST_CASE("a range reads as written in its message", "[core][config]") {
  CHECK(p4lm::between(0, 0.99).describe() == "must be in [0, 0.99]");
  CHECK(p4lm::between(0, 1e6).describe() == "must be in [0, 1000000]");
  CHECK(p4lm::above(0).describe() == "must be > 0");
  CHECK(p4lm::inside(0, 1).describe() == "must be in (0, 1)");
  CHECK(p4lm::Range{0, 1, true, false}.describe() == "must be in (0, 1]");
}

namespace {
struct ShapingGroup {
  p4lm::Param<long> response_length{64, "new tokens per sample", p4lm::between(1, 1e6)};
  p4lm::Param<double> penalty{0, "subtracted from a short sample's score", p4lm::at_least(0)};
};
struct GroupedConfig {
  p4lm::Param<int> iterations{100, "iterations"};
  ShapingGroup shaping;
  p4lm::Param<bool> progress{true, "progress on stderr"};
};
}  // namespace
BOOST_HANA_ADAPT_STRUCT(ShapingGroup, response_length, penalty);
BOOST_HANA_ADAPT_STRUCT(GroupedConfig, iterations, shaping, progress);

TEST_CASE("a group's fields are flags and JSON keys of the enclosing config", "[core][config]") {
  const std::vector<std::string> args{"--response-length", "12",  "--iterations=3",
                                      "--penalty",         "0.5", "--no-progress"};
  const auto c = parse_flags<GroupedConfig>(args);
  CHECK(*c.iterations == 3);
  CHECK(*c.shaping.response_length == 12);
  CHECK(*c.shaping.penalty == 0.5);
  CHECK_FALSE(*c.progress);

  std::vector<std::string> order;
  p4lm::for_each_param(c, [&](std::string_view name, const auto&) { order.emplace_back(name); });
  CHECK(order == std::vector<std::string>{"iterations", "response_length", "penalty", "progress"});

  const auto help = p4lm::flags_help<GroupedConfig>();
  CHECK_THAT(help, Catch::Contains("--response-length <int>"));
  CHECK_THAT(help, !Catch::Contains("shaping"));
  const auto json = p4lm::to_json(c);
  CHECK(json ==
        nlohmann::json{{"iterations", 3}, {"response_length", 12}, {"penalty", 0.5}, {"progress", false}});
  const auto back = p4lm::from_json<GroupedConfig>(json);
  CHECK(*back.shaping.response_length == 12);
  CHECK(*back.shaping.penalty == 0.5);

  CHECK_THROWS_WITH(parse_flags<GroupedConfig>(std::vector<std::string>{"--response-length", "0"}),
                    Catch::Contains("--response-length: must be in [1, "));
  CHECK_THROWS_WITH(p4lm::from_json<GroupedConfig>(nlohmann::json{{"penalty", -1}}),
                    Catch::Contains("'penalty'"));
  CHECK_THROWS_WITH(parse_flags<GroupedConfig>(std::vector<std::string>{"--shaping", "1"}),
                    Catch::Contains("unknown option --shaping"));
}
