// GGUF reader against files written by the `gguf` package (scripts/fixtures/make_gguf_fixture.py),
// with its dequantized values as the expected ones, and hand-made corrupt files for the errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/model_cache.hpp>
#include <p4lm/io/gguf.hpp>

#include "skip.hpp"

namespace fs = std::filesystem;
using p4lm::GgufFile;
using p4lm::io::GgmlType;
using p4lm::io::GgufType;

namespace {

const fs::path fixtures = fs::path(P4LM_TEST_FIXTURES_DIR) / "gguf";

std::vector<std::byte> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

// A GGUF file built byte by byte, to make each malformed case on purpose.
struct Builder {
  std::vector<std::byte> b;
  template <class T>
  Builder& put(T v) {
    const auto at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Builder& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    for (const char ch : s) b.push_back(static_cast<std::byte>(ch));
    return *this;
  }
  Builder& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    return put<std::uint32_t>(0x46554747).put(version).put(n_tensors).put(n_kv);
  }
  Builder& kv_u32(const std::string& key, std::uint32_t v) { return str(key).put<std::uint32_t>(4).put(v); }
  Builder& tensor(const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type,
                  std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
    for (auto d : ne) put(d);
    return put(type).put(offset);
  }
  Builder& pad_data(std::size_t data_bytes, std::size_t alignment = 32) {
    b.resize((b.size() + alignment - 1) / alignment * alignment + data_bytes, std::byte{0});
    return *this;
  }
};

std::string parse_error(std::vector<std::byte> bytes) {
  try {
    GgufFile::parse(std::move(bytes), "bad.gguf");
  } catch (const p4lm::ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("gguf: metadata of every value type from the gguf package, v3 and v2", "[gguf]") {
  const auto expected = nlohmann::json::parse(std::ifstream(fixtures / "expected.json"));
  for (const char* name : {"all_types_v3.gguf", "all_types_v2.gguf"}) {
    INFO(name);
    const GgufFile f(fixtures / name);
    CHECK(f.version() == (std::string(name).find("v3") != std::string::npos ? 3u : 2u));
    CHECK(f.alignment() == 64u);
    CHECK(f.data_offset() % 64 == 0);
    CHECK(f.get<std::string>("general.architecture") == "llama");
    const auto& m = expected["metadata"];
    CHECK(f.type_of("test.u8") == GgufType::U8);
    CHECK(f.get<std::uint8_t>("test.u8") == m["test.u8"].get<int>());
    CHECK(f.type_of("test.i8") == GgufType::I8);
    CHECK(f.get<std::int8_t>("test.i8") == m["test.i8"].get<int>());
    CHECK(f.get<std::uint16_t>("test.u16") == m["test.u16"].get<int>());
    CHECK(f.get<std::int16_t>("test.i16") == m["test.i16"].get<int>());
    CHECK(f.get<std::uint32_t>("test.u32") == m["test.u32"].get<std::uint32_t>());
    CHECK(f.get<std::int32_t>("test.i32") == m["test.i32"].get<std::int32_t>());
    CHECK(f.get<std::uint64_t>("test.u64") == m["test.u64"].get<std::uint64_t>());
    CHECK(f.get<std::int64_t>("test.i64") == m["test.i64"].get<std::int64_t>());
    CHECK(f.type_of("test.f32") == GgufType::F32);
    CHECK(f.get<float>("test.f32") == m["test.f32"].get<float>());
    CHECK(f.type_of("test.f64") == GgufType::F64);
    CHECK(f.get<double>("test.f64") == m["test.f64"].get<double>());
    CHECK(f.get<bool>("test.bool_true"));
    CHECK_FALSE(f.get<bool>("test.bool_false"));
    CHECK(f.get<std::string>("test.string") == m["test.string"].get<std::string>());
    CHECK(f.string_array("test.string_array") == m["test.string_array"].get<std::vector<std::string>>());
    CHECK(f.int_array("test.int_array") == m["test.int_array"].get<std::vector<std::int64_t>>());
    CHECK(f.float_array("test.float_array") == m["test.float_array"].get<std::vector<double>>());
    CHECK(f.int_array("test.bool_array") == std::vector<std::int64_t>{1, 0, 1});
    // Integer conversions that fit are allowed; the rest name the key.
    CHECK(f.get<std::int64_t>("test.u32") == 4000000000);
    CHECK(f.get_or<std::uint32_t>("missing.key", 7u) == 7u);
    CHECK_THROWS_WITH(f.get<std::int32_t>("test.u32"),
                      Catch::Contains("test.u32") && Catch::Contains("does not fit"));
    CHECK_THROWS_WITH(f.get<std::string>("test.u8"),
                      Catch::Contains("test.u8") && Catch::Contains("has type u8"));
    CHECK_THROWS_WITH(f.get<float>("missing.key"),
                      Catch::Contains("missing.key") && Catch::Contains("not found"));
    CHECK_THROWS_WITH(f.string_array("test.int_array"), Catch::Contains("array of i32"));
  }
}

TEST_CASE("gguf: tensors dequantized exactly as the gguf package does", "[gguf]") {
  const auto expected = nlohmann::json::parse(std::ifstream(fixtures / "expected.json"));
  const GgufFile f(fixtures / "all_types_v3.gguf");
  REQUIRE(f.tensors().size() == expected["tensors"].size());
  for (const auto& [name, t] : expected["tensors"].items()) {
    INFO(name);
    const auto& info = f.tensor(name);
    CHECK(p4lm::io::ggml_type_name(info.type) == t["type"].get<std::string>());
    CHECK(info.shape() == t["shape"].get<std::vector<std::size_t>>());
    const auto values = f.dequantize(name);
    const auto want = t["values"].get<std::vector<float>>();
    REQUIRE(values.size() == want.size());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < values.size(); ++i) mismatches += values[i] != want[i];
    CHECK(mismatches == 0);
  }
  CHECK(f.tensor("q4_k").type == GgmlType::Q4_K);
  CHECK(f.raw("q8_0").size() == 3 * 2 * 34);
  CHECK_THROWS_WITH(f.tensor("nope"), Catch::Contains("nope") && Catch::Contains("no such tensor"));
}

TEST_CASE("gguf: corrupt files give one clear error naming file and field", "[gguf]") {
  const auto good = file_bytes(fixtures / "all_types_v3.gguf");
  REQUIRE(good.size() > 1000);

  SECTION("bad magic") {
    auto b = good;
    b[0] = std::byte{'X'};
    CHECK_THAT(parse_error(b), Catch::Contains("bad.gguf") && Catch::Contains("bad magic"));
  }
  SECTION("truncated anywhere") {
    const GgufFile f(fixtures / "all_types_v3.gguf");
    const auto& last = f.tensor("cube.f32");
    const auto end_of_data = f.data_offset() + last.offset + last.nbytes;
    for (const std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{20}, std::size_t{100},
                                  std::size_t{700}, end_of_data - 1}) {
      INFO(cut);
      std::vector<std::byte> b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
      CHECK_THAT(parse_error(b), Catch::Contains("bad.gguf") && Catch::Contains("truncated"));
    }
  }
  SECTION("the last tensor cut short is named") {
    const GgufFile f(fixtures / "all_types_v3.gguf");
    const auto& last = f.tensor("cube.f32");
    std::vector<std::byte> b(good.begin(),
                             good.begin() + static_cast<std::ptrdiff_t>(f.data_offset() + last.offset + 4));
    CHECK_THAT(parse_error(b), Catch::Contains("'cube.f32'") && Catch::Contains("past the end"));
  }
  SECTION("unsupported version") {
    CHECK_THAT(parse_error(Builder{}.header(0, 0, 1).b), Catch::Contains("version 1 is not supported"));
    CHECK_THAT(parse_error(Builder{}.header(0, 0, 4).b), Catch::Contains("version 4 is not supported"));
    CHECK_THAT(parse_error(Builder{}.header(0, 0, 0x03000000).b), Catch::Contains("big-endian"));
  }
  SECTION("unknown tensor type") {
    auto b = Builder{}.header(1, 0).tensor("w", {32}, 99, 0).pad_data(128).b;
    CHECK_THAT(parse_error(b),
               Catch::Contains("'w'") && Catch::Contains("tensor type 99 is not a known ggml type"));
  }
  SECTION("known type without a dequantizer: parses, dequantize refuses") {
    auto b = Builder{}.header(1, 0).tensor("w", {256}, 13 /* Q5_K */, 0).pad_data(176).b;
    const auto f = GgufFile::parse(b, "q5k.gguf");
    CHECK_THROWS_WITH(f.dequantize("w"), Catch::Contains("q5k.gguf") && Catch::Contains("'w'") &&
                                             Catch::Contains("Q5_K is not supported"));
  }
  SECTION("unknown value type") {
    auto b = Builder{}.header(0, 1).str("k").put<std::uint32_t>(77).put<std::uint32_t>(0).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'k'") && Catch::Contains("value type 77"));
  }
  SECTION("duplicate key and duplicate tensor") {
    CHECK_THAT(parse_error(Builder{}.header(0, 2).kv_u32("a", 1).kv_u32("a", 2).b),
               Catch::Contains("'a'") && Catch::Contains("duplicate metadata key"));
    auto b = Builder{}.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_data(64).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'w'") && Catch::Contains("duplicate tensor name"));
  }
  SECTION("dimension overflow, too many dimensions, bad row length") {
    auto b = Builder{}.header(1, 0).tensor("big", {1ull << 40, 1ull << 40}, 0, 0).pad_data(32).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'big'") && Catch::Contains("overflow"));
    b = Builder{}.header(1, 0).tensor("huge", {1ull << 62}, 0, 0).pad_data(32).b;  // 2^64 bytes of F32
    CHECK_THAT(parse_error(b), Catch::Contains("'huge'") && Catch::Contains("overflows 64 bits"));
    b = Builder{}.header(1, 0).tensor("five", {1, 1, 1, 1, 1}, 0, 0).pad_data(32).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'five'") && Catch::Contains("5 dimensions"));
    b = Builder{}.header(1, 0).tensor("q", {33}, 8 /* Q8_0 */, 0).pad_data(128).b;
    CHECK_THAT(parse_error(b),
               Catch::Contains("'q'") && Catch::Contains("multiple of the Q8_0 block size 32"));
  }
  SECTION("offsets: misaligned, out of range, overlapping") {
    auto b = Builder{}.header(1, 0).tensor("w", {8}, 0, 4).pad_data(64).b;
    CHECK_THAT(parse_error(b),
               Catch::Contains("'w'") && Catch::Contains("not a multiple of the alignment 32"));
    b = Builder{}.header(1, 0).tensor("w", {8}, 0, 1ull << 62).pad_data(64).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'w'") && Catch::Contains("past the end"));
    b = Builder{}.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_data(96).b;
    CHECK_THAT(parse_error(b), Catch::Contains("'b'") && Catch::Contains("overlaps tensor 'a'"));
  }
  SECTION("alignment must be a power-of-two u32") {
    CHECK_THAT(parse_error(Builder{}.header(0, 1).kv_u32("general.alignment", 48).b),
               Catch::Contains("general.alignment") && Catch::Contains("power of two"));
  }
  SECTION("huge counts and lengths do not allocate") {
    CHECK_THAT(parse_error(Builder{}.header(1ull << 60, 0).b), Catch::Contains("cannot fit"));
    CHECK_THAT(parse_error(Builder{}
                               .header(0, 1)
                               .str("k")
                               .put<std::uint32_t>(9)
                               .put<std::uint32_t>(8)
                               .put<std::uint64_t>(1ull << 61)
                               .b),
               Catch::Contains("'k'") && Catch::Contains("truncated"));
    CHECK_THAT(parse_error(Builder{}.header(0, 1).put<std::uint64_t>(~0ull).b), Catch::Contains("truncated"));
  }
  SECTION("missing file") {
    CHECK_THROWS_AS(GgufFile(fixtures / "does-not-exist.gguf"), p4lm::IoError);
  }
}

TEST_CASE("gguf: the SmolLM2 file of the model cache", "[gguf][smollm2]") {
  const auto path = p4lm::smollm2_path();
  if (!path)
    P4LM_SKIP("SmolLM2 not in the model cache " << p4lm::model_cache_dir()
                                                << ": run scripts/fetch-models.sh");
  const GgufFile f(*path);
  CHECK(f.version() == 3u);
  CHECK(f.get<std::string>("general.architecture") == "llama");
  CHECK(f.get<std::uint32_t>("llama.block_count") == 30u);
  CHECK(f.string_array("tokenizer.ggml.tokens").size() == 49152);
  CHECK(f.int_array("tokenizer.ggml.token_type").size() == 49152);
  CHECK(f.tensors().size() == 272);
  const auto& emb = f.tensor("token_embd.weight");
  CHECK(emb.type == GgmlType::Q8_0);
  CHECK(emb.shape() == std::vector<std::size_t>{49152, 576});
  std::size_t q4_1 = 0, f32 = 0;
  for (const auto& t : f.tensors()) {
    q4_1 += t.type == GgmlType::Q4_1;
    f32 += t.type == GgmlType::F32;
  }
  CHECK(q4_1 == 210);
  CHECK(f32 == 61);
  const auto w = f.dequantize("blk.0.attn_q.weight");
  CHECK(w.size() == 576u * 576u);
}

TEST_CASE("gguf: random corruption never crashes, only ParseError", "[gguf]") {
  const auto good = file_bytes(fixtures / "all_types_v3.gguf");
  std::uint64_t state = 20250207;
  auto next = [&] {  // splitmix64: a fixed sequence of mutations
    state += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::size_t parsed = 0, refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto b = good;
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      // Mostly the header and tensor infos (the first ~1100 bytes), where the structure is.
      const bool anywhere = next() % 4 == 0;  // two statements: operands of % are unsequenced
      const std::size_t at = next() % (anywhere ? b.size() : std::size_t{1152});
      b[at] = static_cast<std::byte>(next() & 0xFF);
    }
    if (next() % 8 == 0) b.resize(next() % b.size());
    try {
      const auto f = GgufFile::parse(b, "mutated.gguf");
      for (const auto& t : f.tensors())
        if (p4lm::io::ggml_type_traits(static_cast<std::uint32_t>(t.type))->dequantizable &&
            t.numel() < (1u << 20))
          (void)f.dequantize(t.name);
      ++parsed;
    } catch (const p4lm::ParseError& e) {
      CHECK(std::string(e.what()).find("mutated.gguf") != std::string::npos);
      ++refused;
    }
  }
  CHECK(parsed + refused == 3000);
  CHECK(refused > 0);
}
