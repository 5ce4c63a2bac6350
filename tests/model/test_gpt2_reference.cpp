// GPT-2 forward/backward against Hugging Face transformers (tests/fixtures/gpt2, written by
// scripts/fixtures/make_gpt2_fixture.py): logits, loss and the gradient of every parameter, with and
// without soft-token prefix embeddings; HF checkpoint loading with and without the `transformer.`
// prefix, and loader errors.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace p4lm;

namespace {

const fs::path fixture_dir = fs::path(P4LM_TEST_FIXTURES_DIR) / "gpt2";

// max |a - r| / max |r|: the error relative to the reference tensor's scale.
double rel_error(const float* a, const std::vector<float>& r) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(r[i])));
    scale = std::max(scale, std::abs(double(r[i])));
  }
  return diff / std::max(scale, 1e-30);
}

std::vector<std::int32_t> ids_of(const io::SafetensorsFile& f, const std::string& name) {
  const auto v = f.read_i64(name);
  return {v.begin(), v.end()};
}

bool is_conv1d(const std::string& name) {
  return name.ends_with("c_attn.weight") || name.ends_with("c_proj.weight") || name.ends_with("c_fc.weight");
}

// HF layout (in, out) of a Conv1D gradient transposed to p4lm's (out, in).
std::vector<float> to_model_layout(const Parameter<float>& p, std::vector<float> ref) {
  if (!is_conv1d(p.name)) return ref;
  const std::size_t out = p.value.dim(0), in = p.value.dim(1);
  std::vector<float> t(ref.size());
  for (std::size_t i = 0; i < in; ++i)
    for (std::size_t o = 0; o < out; ++o) t[o * in + i] = ref[i * out + o];
  return t;
}

void check_gradients(GPT2LM<float>& model, const io::SafetensorsFile& ref, const std::string& case_name) {
  double worst = 0;
  std::string worst_name;
  for (auto& p : model.parameters()) {
    const auto expected = to_model_layout(p, ref.read_f32(case_name + ".grad.transformer." + p.name));
    const double e = rel_error(p.grad.data(), expected);
    INFO(case_name << ": gradient of " << p.name << " relative error " << e);
    CHECK(e < 1e-4);
    if (e > worst) worst = e, worst_name = p.name;
  }
  WARN(case_name << ": worst gradient relative error " << worst << " (" << worst_name << ")");
}

}  // namespace

TEST_CASE("GPT-2 logits, loss and every gradient match Hugging Face", "[model][gpt2]") {
  auto model = load_hf_gpt2(fixture_dir);
  const auto ref = io::SafetensorsFile::open(fixture_dir / "reference.safetensors");
  REQUIRE(ref.metadata().at("p4lm_fixture") == "gpt2");
  REQUIRE(ref.metadata().at("version") == "1");
  CHECK(model.config().vocab_size == 300);
  CHECK(model.config().n_layers == 2);

  auto ids = ids_of(ref, "full.input_ids");
  auto targets = ids_of(ref, "full.targets");
  const std::size_t B = 3, T = 16, V = 300;
  REQUIRE(ids.size() == B * T);
  const TensorView<backend::cpu, std::int32_t> ids_v(ids.data(), Shape{B, T}),
      targets_v(targets.data(), Shape{B, T});

  model.forward({.ids = ids_v});
  const double logit_err = rel_error(model.logits().data(), ref.read_f32("full.logits"));
  INFO("logits relative error " << logit_err);
  CHECK(logit_err < 1e-5);
  CHECK(model.logits().shape() == Shape{B, T, V});

  const float loss = model.forward({.ids = ids_v, .targets = targets_v});
  const double ref_loss = ref.read_f32("full.loss")[0];
  CHECK(std::abs(loss - ref_loss) / ref_loss < 1e-5);

  model.zero_grad();
  model.backward();
  check_gradients(model, ref, "full");

  SECTION("a second backward accumulates") {
    model.forward({.ids = ids_v, .targets = targets_v});
    model.backward();
    const auto expected = to_model_layout(model.parameter("h.1.mlp.c_fc.weight"),
                                          ref.read_f32("full.grad.transformer.h.1.mlp.c_fc.weight"));
    std::vector<float> twice(expected.size());
    for (std::size_t i = 0; i < twice.size(); ++i) twice[i] = 2 * expected[i];
    CHECK(rel_error(model.parameter("h.1.mlp.c_fc.weight").grad.data(), twice) < 1e-4);
  }
}

TEST_CASE("GPT-2 with prefix embeddings matches Hugging Face inputs_embeds", "[model][gpt2][prefix]") {
  auto model = load_hf_gpt2(fixture_dir / "model.safetensors");
  const auto ref = io::SafetensorsFile::open(fixture_dir / "reference.safetensors");
  const std::size_t B = 2, P = 3, T = 10, C = 64;
  auto prefix = ref.read_f32("prefix.prefix");
  auto ids = ids_of(ref, "prefix.input_ids");
  auto text_targets = ids_of(ref, "prefix.targets");
  REQUIRE(prefix.size() == B * P * C);
  // p4lm's targets cover every position: none on the prefix, the text targets after it.
  std::vector<std::int32_t> targets(B * (P + T), ops::ignore_index_default);
  for (std::size_t b = 0; b < B; ++b)
    std::copy(text_targets.begin() + b * T, text_targets.begin() + (b + 1) * T,
              targets.begin() + b * (P + T) + P);
  const LMInput<float> in{.ids = {ids.data(), Shape{B, T}},
                          .prefix = {prefix.data(), Shape{B, P, C}},
                          .targets = {targets.data(), Shape{B, P + T}}};
  model.forward({.ids = in.ids, .prefix = in.prefix});
  CHECK(rel_error(model.logits().data(), ref.read_f32("prefix.logits")) < 1e-5);
  const float loss = model.forward(in);
  const double ref_loss = ref.read_f32("prefix.loss")[0];
  CHECK(std::abs(loss - ref_loss) / ref_loss < 1e-5);
  model.zero_grad();
  model.backward();
  check_gradients(model, ref, "prefix");
  const double e = rel_error(model.prefix_grad().data(), ref.read_f32("prefix.grad.prefix"));
  INFO("prefix gradient relative error " << e);
  CHECK(e < 1e-4);
  CHECK(model.prefix_grad().shape() == Shape{B, P, C});
}

namespace {
// Rewrites the fixture's model.safetensors with renamed/extra/dropped tensors into dir.
void rewrite(const fs::path& dir, auto&& rename,
             std::vector<std::pair<std::string, std::vector<float>>> extra = {}) {
  fs::create_directories(dir);
  fs::copy_file(fixture_dir / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  const auto st = io::SafetensorsFile::open(fixture_dir / "model.safetensors");
  std::vector<io::SafetensorsEntry> entries;
  for (const auto& t : st.tensors()) {
    const std::string name = rename(t.name);
    if (!name.empty()) entries.push_back({name, t.dtype, t.shape, t.data});
  }
  for (auto& [name, values] : extra)
    entries.push_back(io::tensor_f32(name, {1, 1, 2, 2}, std::span<const float>(values)));
  io::save_safetensors(dir / "model.safetensors", entries, {{"format", "pt"}});
}
}  // namespace

TEST_CASE("HF GPT-2 loads with or without the transformer. prefix", "[model][gpt2][checkpoint]") {
  auto reference = load_hf_gpt2(fixture_dir);
  const fs::path dir = fs::temp_directory_path() / "p4lm_test_gpt2_noprefix";
  // Without the prefix, plus the causal-mask buffer real GPT-2 files carry (ignored).
  rewrite(dir, [](const std::string& n) { return n.starts_with("transformer.") ? n.substr(12) : n; },
          {{"h.0.attn.bias", {1, 0, 1, 1}}});
  auto model = load_hf_gpt2(dir);
  for (std::size_t i = 0; i < model.parameters().size(); ++i) {
    const auto& a = model.parameters()[i];
    const auto& b = reference.parameters()[i];
    REQUIRE(a.name == b.name);
    CHECK(std::equal(a.value.data(), a.value.data() + a.value.numel(), b.value.data()));
  }
  fs::remove_all(dir);
}

TEST_CASE("HF GPT-2 loader errors name the file and the tensor", "[model][gpt2][checkpoint]") {
  const fs::path dir = fs::temp_directory_path() / "p4lm_test_gpt2_bad";
  SECTION("missing tensor") {
    rewrite(dir, [](const std::string& n) { return n == "transformer.h.1.ln_2.bias" ? std::string() : n; });
    CHECK_THROWS_WITH(load_hf_gpt2(dir),
                      Catch::Contains("model.safetensors") && Catch::Contains("h.1.ln_2.bias"));
  }
  SECTION("wrong shape") {
    rewrite(dir, [](const std::string& n) { return n; });
    // Swap two names with different shapes: ln_f.weight gets wpe's data? Use a fresh file instead.
    std::vector<float> small(7, 0.f);
    io::save_safetensors(dir / "model.safetensors", {io::tensor_f32("wte.weight", {7}, small)});
    CHECK_THROWS_WITH(load_hf_gpt2(dir), Catch::Contains("model.safetensors") &&
                                             Catch::Contains("wte.weight") && Catch::Contains("[7]"));
  }
  SECTION("truncated file") {
    rewrite(dir, [](const std::string& n) { return n; });
    const auto size = fs::file_size(dir / "model.safetensors");
    fs::resize_file(dir / "model.safetensors", size - 100);
    CHECK_THROWS_WITH(load_hf_gpt2(dir),
                      Catch::Contains("model.safetensors") && Catch::Contains("truncated"));
  }
  SECTION("missing config.json") {
    fs::create_directories(dir);
    fs::remove(dir / "config.json");
    CHECK_THROWS_WITH(load_hf_gpt2(dir), Catch::Contains("config.json"));
  }
  fs::remove_all(dir);
}
