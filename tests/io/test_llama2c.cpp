#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/llama2c.hpp>

namespace fs = std::filesystem;
using p4lm::io::load_llama2c;

namespace {

// A llama2.c file from a header and `floats` sequential values 0, 1, 2, ...
std::string synthetic(std::vector<std::int32_t> header, std::size_t floats) {
  std::string out(header.size() * 4, '\0');
  std::memcpy(out.data(), header.data(), out.size());
  for (std::size_t i = 0; i < floats; ++i) {
    const float f = static_cast<float>(i);
    out.append(reinterpret_cast<const char*>(&f), 4);
  }
  return out;
}

}  // namespace

TEST_CASE("llama2.c loader reads stories260K with run.c's layout", "[io][llama2c]") {
  const auto ckpt = load_llama2c(p4lm::data_path("tiny-lm/stories260K/stories260K.bin"));
  const auto& c = ckpt.config;
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.seq_len == 512);
  CHECK(c.shared_classifier);
  CHECK(c.head_size() == 8);
  CHECK(c.kv_dim() == 32);
  CHECK_FALSE(ckpt.contains("wcls"));
  CHECK_FALSE(ckpt.contains("freq_cis_real"));
  using S = std::vector<std::size_t>;
  CHECK(ckpt.at("token_embedding").shape == S{512, 64});
  CHECK(ckpt.at("wq").shape == S{5, 64, 64});
  CHECK(ckpt.at("wk").shape == S{5, 32, 64});
  CHECK(ckpt.at("wv").shape == S{5, 32, 64});
  CHECK(ckpt.at("w1").shape == S{5, 172, 64});
  CHECK(ckpt.at("w2").shape == S{5, 64, 172});
  CHECK(ckpt.at("rms_final").shape == S{64});
  std::size_t total = 0;
  for (const auto& w : ckpt.weights) total += w.data.size();
  CHECK(total + 2 * 512 * 4 == 264128);  // PROVENANCE: 28 + 4 x 264,128 bytes incl. freq_cis tables
  // First and last value of each tensor, read at their byte offsets by a separate Python script.
  struct Probe {
    const char* name;
    float first, last;
  };
  const Probe probes[] = {{"token_embedding", -0.29474878311157227f, -0.424032598733902f},
                          {"rms_att", 0.9722429513931274f, 1.0649559497833252f},
                          {"wq", 0.04439278692007065f, -0.18901382386684418f},
                          {"wk", 0.2161301076412201f, -0.2651301622390747f},
                          {"wv", 0.09112543612718582f, 0.08836912363767624f},
                          {"wo", 0.017344146966934204f, 0.0062035913579165936f},
                          {"rms_ffn", 0.7367770671844482f, 1.234261155128479f},
                          {"w1", 0.21368665993213654f, -0.14359810948371887f},
                          {"w2", 0.13498419523239136f, -0.0035068716388195753f},
                          {"w3", 0.07037118822336197f, 0.10603193938732147f},
                          {"rms_final", 2.4583089351654053f, 1.7077769041061401f}};
  for (const auto& p : probes) {
    INFO(p.name);
    CHECK(ckpt.at(p.name).data.front() == p.first);
    CHECK(ckpt.at(p.name).data.back() == p.last);
  }
  CHECK_THROWS_WITH(ckpt.at("nope"), Catch::Contains("no weight 'nope'"));
}

TEST_CASE("llama2.c loader: unshared classifier and malformed files", "[io][llama2c]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_llama2c";
  fs::remove_all(dir);
  const auto path = dir / "tiny.bin";
  // dim 4, hidden 6, 1 layer, 2 heads, 1 kv head, vocab -3 (unshared), seq_len 2: head 2, kv_dim 2.
  // floats: emb 12, rms_att 4, wq 16, wk 8, wv 8, wo 16, rms_ffn 4, w1 24, w2 24, w3 24, rms_final 4,
  // freq_cis 2 x 2, wcls 12.
  const std::size_t n = 12 + 4 + 16 + 8 + 8 + 16 + 4 + 24 * 3 + 4 + 4 + 12;
  const std::vector<std::int32_t> header = {4, 6, 1, 2, 1, -3, 2};
  p4lm::io::write_file_atomically(path, synthetic(header, n));
  const auto ckpt = load_llama2c(path);
  CHECK_FALSE(ckpt.config.shared_classifier);
  CHECK(ckpt.config.vocab_size == 3);
  REQUIRE(ckpt.contains("wcls"));
  CHECK(ckpt.at("wcls").shape == std::vector<std::size_t>{3, 4});
  CHECK(ckpt.at("wcls").data.front() == static_cast<float>(n - 12));  // after the skipped freq_cis
  CHECK(ckpt.at("wk").data.front() == 32.0f);

  SECTION("truncated inside a tensor names it") {
    p4lm::io::write_file_atomically(path, synthetic(header, 12 + 4 + 16 + 8 + 8 + 16 + 4 + 24 + 10));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("tiny.bin") && Catch::Contains("field 'w2'") &&
                                              Catch::Contains("truncated"));
    p4lm::io::write_file_atomically(path, synthetic(header, n - 1));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("field 'wcls'"));
    p4lm::io::write_file_atomically(path, std::string(20, '\0'));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("inside the 28-byte llama2.c header"));
  }
  SECTION("extra bytes mean the config does not match") {
    p4lm::io::write_file_atomically(path, synthetic(header, n + 3));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("12 bytes left after the last tensor"));
  }
  SECTION("implausible headers") {
    p4lm::io::write_file_atomically(path, synthetic({4, 6, 1, 3, 1, 3, 2}, n));
    CHECK_THROWS_WITH(load_llama2c(path),
                      Catch::Contains("field 'n_heads'") && Catch::Contains("does not divide dim"));
    p4lm::io::write_file_atomically(path, synthetic({0x616b3432, 1, 0, 0, 0, 0, 0}, 0));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("magic ak42"));
    p4lm::io::write_file_atomically(path, synthetic({-4, 6, 1, 2, 1, 3, 2}, n));
    CHECK_THROWS_WITH(load_llama2c(path), Catch::Contains("field 'dim'"));
    // Found by fuzz_llama2c: negating INT32_MIN (the unshared-classifier sign) overflowed.
    p4lm::io::write_file_atomically(
        path, synthetic({4, 6, 1, 2, 1, std::numeric_limits<std::int32_t>::min(), 2}, n));
    CHECK_THROWS_WITH(load_llama2c(path),
                      Catch::Contains("field 'vocab_size'") && Catch::Contains("-2147483648"));
  }
  CHECK_THROWS_AS(load_llama2c(dir / "missing.bin"), p4lm::IoError);
  CHECK_THROWS_AS(load_llama2c(dir), p4lm::Error);  // a folder, not a file
  fs::remove_all(dir);
}
