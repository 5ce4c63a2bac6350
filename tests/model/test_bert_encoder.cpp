#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/gradcheck.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/io/safetensors.hpp>
#include <p4lm/model/bert_encoder.hpp>

#include "skip.hpp"

namespace fs = std::filesystem;
using namespace p4lm;

namespace {

fs::path minilm_dir() {
  const char* env = std::getenv("P4LM_MODELS");
  const fs::path models =
      env && *env ? fs::path(env) : fs::path(P4LM_TEST_FIXTURES_DIR) / ".." / ".." / "models";
  return models / "all-minilm-l6-v2";
}

BertConfig tiny_config() {
  BertConfig c;
  c.vocab_size = 13;
  c.max_positions = 7;
  c.type_vocab_size = 2;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_ff = 12;
  c.layer_norm_eps = 1e-5;  // larger than BERT's so the double check is not dominated by tiny variances
  return c;
}

template <class T>
Tensor<backend::cpu, T> random_tensor(Shape s, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor<backend::cpu, T> t(s);
  for (auto& x : t.span()) x = static_cast<T>(scale * rng.normal());
  return t;
}

double dot(const TensorView<backend::cpu, double>& a, const TensorView<backend::cpu, double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.numel(); ++i) s += a.data()[i] * b.data()[i];
  return s;
}

}  // namespace

TEST_CASE("BertEncoder: backward matches finite differences for every parameter and the input",
          "[bert][grad]") {
  using Enc = BertEncoder<backend::cpu, double>;
  // Width 8 runs split q/k/v products; width 16 the fused (3C, C) one (the three tensors adjacent in
  // the parameter allocation, as at MiniLM's 384).
  const std::size_t C = GENERATE(std::size_t(8), std::size_t(16));
  auto config = tiny_config();
  config.d_model = C;
  Enc enc(config);
  const auto bias = [&](const char* w) {
    return enc.parameter(std::string("encoder.layer.0.attention.self.") + w + ".bias").value.data();
  };
  CHECK((bias("key") == bias("query") + C) == (C == 16));  // the fused product's precondition
  // Central differences: at width 16 the loss's rounding (~1e-14) over a 1e-6 step is ~1e-8, the
  // size of the smallest gradients checked; a 1e-5 step keeps that noise below the tolerance.
  const double step = C == 8 ? 1e-6 : 1e-5;
  Rng rng(7);
  enc.init_random(rng, 0.3);
  // Gains and biases away from 1 and 0, so their gradients are exercised in general position.
  for (auto& p : enc.parameters())
    if (p.value.rank() == 1)
      for (auto& x : p.value.span()) x += 0.2 * rng.normal();

  const std::size_t B = 2, T = 5;
  std::vector<std::int32_t> ids{1, 5, 9, 12, 2, 3, 3, 7, 0, 0}, types{0, 0, 1, 1, 1, 0, 1, 1, 0, 0},
      lens{5, 3};
  const TensorView<backend::cpu, std::int32_t> idv(ids.data(), {B, T}), tv(types.data(), {B, T}),
      lv(lens.data(), {B});
  const auto g_emb = random_tensor<double>({B, C}, 11);
  const auto g_hid = random_tensor<double>({B, T, C}, 12);

  SECTION("ids input, both the embedding and the hidden-state gradient") {
    const BertInput<double> in{.ids = idv, .type_ids = tv, .lengths = lv};
    auto loss = [&] {
      enc.forward(in);
      return dot(enc.embeddings(), g_emb) + dot(enc.hidden(), g_hid);
    };
    loss();
    enc.zero_grad();
    enc.backward(g_emb, g_hid);
    std::size_t checked = 0;
    for (auto& p : enc.parameters()) {
      const Tensor<backend::cpu, double> analytic(p.grad);
      const auto report = check_gradient(loss, p.value, analytic, step, 1e-9);
      INFO(p.name << ": " << report.str());
      if (p.name.find("key.bias") != std::string::npos)
        CHECK(report.max_absolute_error < 1e-7);  // exactly 0: softmax ignores a shift shared by all keys
      else
        CHECK(report.max_relative_error < 1e-5);
      ++checked;
    }
    CHECK(checked == 5 + 2 * 16);
  }

  SECTION("inputs_embeds input, through the normalised mean only") {
    auto x = random_tensor<double>({B, T, C}, 13);
    const BertInput<double> in{.type_ids = tv, .lengths = lv, .inputs_embeds = x};
    auto loss = [&] {
      enc.forward(in);
      return dot(enc.embeddings(), g_emb);
    };
    loss();
    enc.zero_grad();
    enc.backward(g_emb);
    const Tensor<backend::cpu, double> analytic(enc.input_grad());
    const auto report = check_gradient(loss, x, analytic, step, 1e-9);
    INFO("inputs_embeds: " << report.str());
    CHECK(report.max_relative_error < 1e-5);
    // Padding positions (b = 1, t >= 3) are never attended to or pooled: no gradient.
    for (std::size_t t = 3; t < T; ++t)
      for (std::size_t c = 0; c < C; ++c) CHECK(analytic.data()[(1 * T + t) * C + c] == 0.0);
    for (auto& p : enc.parameters()) {
      if (p.name != "embeddings.position_embeddings.weight" &&
          p.name != "encoder.layer.1.output.dense.weight")
        continue;
      const Tensor<backend::cpu, double> pa(p.grad);
      const auto r = check_gradient(loss, p.value, pa, step, 1e-9);
      INFO(p.name << ": " << r.str());
      CHECK(r.max_relative_error < 1e-5);
    }
  }
}

TEST_CASE("BertEncoder: padding changes nothing, encode() equals forward(), unit vectors", "[bert]") {
  BertEncoder<> enc(tiny_config());
  Rng rng(3);
  enc.init_random(rng, 0.5);
  std::vector<std::int32_t> one{4, 8, 1}, padded{4, 8, 1, 0, 0, 11, 4, 9, 2, 6};
  std::vector<std::int32_t> len1{3}, len2{3, 5};
  const auto single = enc.forward({.ids = {one.data(), {1, 3}}, .lengths = {len1.data(), {1}}});
  const std::vector<float> a(single.data(), single.data() + 8);
  const auto both = enc.forward({.ids = {padded.data(), {2, 5}}, .lengths = {len2.data(), {2}}});
  for (std::size_t c = 0; c < 8; ++c) CHECK(both.data()[c] == Approx(a[c]).margin(1e-6));
  const std::vector<float> f(both.data(), both.data() + 16);
  const auto e = enc.encode({.ids = {padded.data(), {2, 5}}, .lengths = {len2.data(), {2}}});
  for (std::size_t i = 0; i < 16; ++i) CHECK(e.data()[i] == f[i]);  // same ops, same order
  for (std::size_t b = 0; b < 2; ++b) {
    double n = 0;
    for (std::size_t c = 0; c < 8; ++c) n += double(f[b * 8 + c]) * f[b * 8 + c];
    CHECK(std::sqrt(n) == Approx(1.0).epsilon(1e-6));
  }
  CHECK_THROWS_AS(enc.backward(e), UsageError);  // encode() keeps nothing for backward
  std::vector<std::int32_t> bad{4, 13, 1};
  CHECK_THROWS_WITH(enc.forward({.ids = {bad.data(), {1, 3}}}), Catch::Contains("token id 13"));
  std::vector<std::int32_t> bad_len{4};
  CHECK_THROWS_WITH(enc.forward({.ids = {one.data(), {1, 3}}, .lengths = {bad_len.data(), {1}}}),
                    Catch::Contains("length of 4"));
}

TEST_CASE("BertEncoder: all-MiniLM-L6-v2 embeddings match sentence-transformers (cosine >= 0.99999)",
          "[bert]") {
  if (!fs::exists(minilm_dir() / "model.safetensors"))
    P4LM_SKIP("all-MiniLM-L6-v2 not in " << minilm_dir().string()
                                         << ": run scripts/fetch-models.sh or set P4LM_MODELS");
  const auto ref =
      io::SafetensorsFile::open(fs::path(P4LM_TEST_FIXTURES_DIR) / "model" / "minilm_embeddings.safetensors");
  const auto texts = nlohmann::json::parse(ref.metadata().at("texts")).get<std::vector<std::string>>();
  REQUIRE(texts.size() == 200);
  const auto want = ref.read_f32("embeddings");
  const auto& lens_view = ref.at("lengths");
  std::vector<std::int32_t> want_lengths(texts.size());
  std::memcpy(want_lengths.data(), lens_view.data.data(), want_lengths.size() * sizeof(std::int32_t));

  SentenceEncoder st(minilm_dir());
  REQUIRE(st.dim() == 384);
  CHECK(st.encoder().config().max_seq_length == 256);
  CHECK(st.encoder().config().normalize);
  for (std::size_t i = 0; i < texts.size(); ++i)
    CHECK(st.tokenizer().encode(texts[i]).size() == std::size_t(want_lengths[i]));

  const auto got = st.embed(texts, 32);
  double worst = 1;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    double d = 0, na = 0, nb = 0;
    for (std::size_t c = 0; c < 384; ++c) {
      const double x = got[i * 384 + c], y = want[i * 384 + c];
      d += x * y, na += x * x, nb += y * y;
    }
    const double cos = d / std::sqrt(na * nb);
    if (cos < worst) worst = cos, worst_i = i;
  }
  std::cout << "all-MiniLM-L6-v2, 200 texts: 1 - worst cosine to sentence-transformers = "
            << std::setprecision(3) << 1 - worst << '\n';
  INFO("worst cosine " << worst << " for text " << worst_i << ": " << texts[worst_i]);
  CHECK(worst >= 0.99999);
  // Batch composition does not matter: one at a time gives the same vectors.
  const std::vector<std::string> few(texts.begin(), texts.begin() + 3);
  const auto single = st.embed(few, 1);
  for (std::size_t i = 0; i < single.size(); ++i) CHECK(single[i] == Approx(got[i]).margin(1e-5));
}

TEST_CASE("BertEncoder: a checkpoint that does not fit is one clear error", "[bert]") {
  const fs::path dir = fs::temp_directory_path() / "p4lm_bert_test";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "gpt2", "hidden_act": "gelu"})";
  CHECK_THROWS_WITH(BertConfig::from_json(dir / "config.json"), Catch::Contains("model_type"));
  std::ofstream(dir / "config.json") << R"({"model_type": "bert", "hidden_act": "gelu", "vocab_size": 13,
    "max_position_embeddings": 7, "type_vocab_size": 2, "hidden_size": 8, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 12})";
  const auto c = BertConfig::from_json(dir / "config.json");
  CHECK(c.d_model == 8);
  BertEncoder<> enc(c);
  io::save_safetensors(dir / "model.safetensors", {io::tensor_f32("embeddings.word_embeddings.weight",
                                                                  {13, 8}, std::vector<float>(104, 0.f))});
  CHECK_THROWS_WITH(enc.load_weights(io::SafetensorsFile::open(dir / "model.safetensors")),
                    Catch::Contains("embeddings.position_embeddings.weight") && Catch::Contains("missing"));
  fs::remove_all(dir);
}
