// ModelConfig: equality of resolved shapes (a resume must accept its own checkpoint), the resume
// error listing only the differing fields, bounds on every size (no std::bad_alloc from a mistyped
// config), and refusal of non-finite weights in a checkpoint.

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "p4lm/model/checkpoint.hpp"

using namespace p4lm;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {
ModelConfig small_llama() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 13;
  c.d_model = 8;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 0;  // the default: as many as n_heads
  c.d_ff = 12;
  c.max_seq = 16;
  c.tied_head = true;
  return c;
}

fs::path scratch(const char* name) {
  const auto dir = fs::temp_directory_path() / ("p4lm_test_model_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}
}  // namespace

TEST_CASE("n_kv_heads 0 equals its resolved value, and a checkpoint of it loads back", "[model][config]") {
  const auto raw = small_llama();
  auto resolved = raw;
  resolved.n_kv_heads = raw.n_heads;
  CHECK(raw == resolved);
  CHECK(differences(raw, resolved).empty());
  CHECK(model_config_from_json(to_json(raw)) == raw);  // what a resume compares

  LlamaLM<> model(raw);
  Rng rng(3);
  model.init_random(rng);
  const auto path = scratch("kv0.safetensors");
  save_checkpoint(path, model);
  LlamaLM<> again(raw);
  CHECK_NOTHROW(load_checkpoint_into(again, path));
  fs::remove_all(path.parent_path());
}

TEST_CASE("a config mismatch names only the fields that differ", "[model][config]") {
  auto a = small_llama(), b = small_llama();
  b.n_layers = 2;
  b.d_ff = 16;
  const auto diff = differences(a, b);
  REQUIRE(diff.size() == 2);
  CHECK(diff[0] == "n_layers 1 vs 2");
  CHECK(diff[1] == "d_ff 12 vs 16");

  LlamaLM<> model(a);
  const auto path = scratch("mismatch.safetensors");
  save_checkpoint(path, model);
  LlamaLM<> other(b);
  try {
    load_checkpoint_into(other, path);
    FAIL("a different config was accepted");
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    CHECK_THAT(message,
               Contains("mismatch.safetensors") && Contains("n_layers 1 vs 2") && Contains("d_ff 12 vs 16"));
    CHECK_THAT(message, !Contains("vocab_size") && !Contains("{"));  // no full dumps
  }
  fs::remove_all(path.parent_path());
}

TEST_CASE("out-of-range sizes are refused by field, not as std::bad_alloc", "[model][config]") {
  auto with = [](const char* key, nlohmann::json value) {
    auto j = to_json(small_llama());
    j[key] = std::move(value);
    return j;
  };
  CHECK_THROWS_WITH(model_config_from_json(with("d_model", -8), "cfg.json"),
                    Contains("cfg.json") && Contains("d_model must be a non-negative integer, got -8"));
  CHECK_THROWS_WITH(model_config_from_json(with("n_layers", 1.5)),
                    Contains("n_layers must be a non-negative integer"));
  CHECK_THROWS_WITH(model_config_from_json(with("vocab_size", 1e15)), Contains("vocab_size"));
  CHECK_THROWS_WITH(model_config_from_json(with("vocab_size", std::uint64_t{1} << 40)),
                    Contains("vocab_size must be in [1, 16777216]"));
  CHECK_THROWS_WITH(model_config_from_json(with("n_layers", 100000)),
                    Contains("n_layers must be in [1, 1024]"));
  CHECK_THROWS_WITH(model_config_from_json(with("d_model", 0)),
                    Contains("d_model must be in [1, 65536], got 0"));
  CHECK_THROWS_WITH(model_config_from_json(with("n_heads", 1 << 20)), Contains("n_heads"));
  CHECK_THROWS_WITH(model_config_from_json(with("n_kv_heads", 4)), Contains("n_kv_heads must be <= n_heads"));
  CHECK_THROWS_WITH(model_config_from_json(with("norm_eps", -1.0)), Contains("norm_eps"));
  // Each field within bounds, the whole too large: refused before any allocation.
  auto big = small_llama();
  big.vocab_size = ModelConfig::max_vocab_size;
  big.d_model = ModelConfig::max_d_model;
  big.n_heads = 64;
  CHECK_THROWS_WITH(big.validate("x.json"),
                    Contains("x.json") && Contains("parameters, more than the limit"));
  // A checkpoint whose metadata holds a bad config names the file.
  auto j = to_json(small_llama());
  j["d_model"] = -1;
  const auto path = scratch("badconfig.safetensors");
  io::save_safetensors(path, std::vector<io::SafetensorsEntry>{},
                       {{"format", "p4lm"}, {"p4lm_checkpoint", "1"}, {"config", j.dump()}});
  CHECK_THROWS_WITH(load_checkpoint<LlamaLM<>>(path),
                    Contains("badconfig.safetensors") && Contains("d_model"));
  fs::remove_all(path.parent_path());
}

TEST_CASE("a checkpoint holding NaN or Inf is refused with the tensor named", "[model][config][finite]") {
  LlamaLM<> model(small_llama());
  Rng rng(5);
  model.init_random(rng);
  model.parameter("layers.0.attention.wk.weight").value.data()[3] = std::numeric_limits<float>::quiet_NaN();
  const auto path = scratch("nan.safetensors");
  save_checkpoint(path, model);
  CHECK_THROWS_WITH(load_checkpoint<LlamaLM<>>(path), Contains("nan.safetensors") &&
                                                          Contains("layers.0.attention.wk.weight") &&
                                                          Contains("element 3") && Contains("NaN"));
  model.parameter("layers.0.attention.wk.weight").value.data()[3] = 0.0f;
  model.parameter("norm.weight").value.data()[0] = -std::numeric_limits<float>::infinity();
  save_checkpoint(path, model);
  CHECK_THROWS_WITH(load_any_lm(path), Contains("norm.weight") && Contains("-inf"));
  fs::remove_all(path.parent_path());
}
