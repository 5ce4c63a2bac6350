#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <p4lm/io/safetensors.hpp>

namespace fs = std::filesystem;
using namespace p4lm::io;

namespace {

fs::path temp_dir(const char* name) {
  const auto dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A file from a literal header and data section, to build malformed cases byte by byte.
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes,
                                std::uint64_t claimed = 0) {
  std::string out(8, '\0');
  const std::uint64_t n = claimed ? claimed : header.size();
  std::memcpy(out.data(), &n, 8);
  out += header;
  out.append(data_bytes, '\x01');
  std::vector<std::byte> bytes(out.size());
  std::memcpy(bytes.data(), out.data(), out.size());
  return bytes;
}

SafetensorsFile parse(const std::string& header, std::size_t data_bytes, std::uint64_t claimed = 0) {
  return SafetensorsFile::parse(raw_file(header, data_bytes, claimed), "bad.safetensors");
}

}  // namespace

TEST_CASE("safetensors save then load is bit-identical", "[io][safetensors]") {
  const auto dir = temp_dir("p4lm_test_safetensors");
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> w(6 * 5);
  for (auto& v : w) v = normal(rng);
  w[3] = -0.0f;
  w[4] = std::numeric_limits<float>::denorm_min();
  const std::vector<std::int64_t> ids = {1, -2, 3, std::numeric_limits<std::int64_t>::max()};
  const std::vector<std::uint16_t> halves = {float_to_f16(1.5f), float_to_f16(-65504.0f), 0x0001};
  const std::vector<std::uint16_t> bf = {float_to_bf16(3.0f), float_to_bf16(-0.25f)};
  const std::vector<double> dbl = {0.1, -1e300};
  const std::vector<SafetensorsEntry> entries = {
      tensor_f32("wte.weight", {6, 5}, w),
      {"ids", Dtype::I64, {4}, std::as_bytes(std::span(ids))},
      {"half", Dtype::F16, {3}, std::as_bytes(std::span(halves))},
      {"bf", Dtype::BF16, {1, 2}, std::as_bytes(std::span(bf))},
      {"dbl", Dtype::F64, {2}, std::as_bytes(std::span(dbl))},
      {"empty", Dtype::F32, {0, 3}, {}},
      {"scalar", Dtype::F32, {}, std::as_bytes(std::span(w).first(1))},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"p4lm.config", "{\"dim\":64}"}};
  const auto path = dir / "model.safetensors";
  save_safetensors(path, entries, meta);

  const auto file = SafetensorsFile::open(path);
  CHECK(file.metadata() == meta);
  CHECK(file.names() ==
        std::vector<std::string>{"bf", "dbl", "empty", "half", "ids", "scalar", "wte.weight"});
  const auto& view = file.at("wte.weight");
  CHECK(view.dtype == Dtype::F32);
  CHECK(view.shape == std::vector<std::int64_t>{6, 5});
  const auto back = file.read_f32("wte.weight");
  REQUIRE(back.size() == w.size());
  CHECK(std::memcmp(back.data(), w.data(), w.size() * sizeof(float)) == 0);
  CHECK(std::signbit(back[3]));
  CHECK(file.read_i64("ids") == ids);
  CHECK(file.read_f32("half") == std::vector<float>{1.5f, -65504.0f, std::ldexp(1.0f, -24)});
  CHECK(file.read_f32("bf") == std::vector<float>{3.0f, -0.25f});
  CHECK(file.read_f32("dbl", /*finite=*/false) == std::vector<float>{0.1f, -INFINITY});
  CHECK_THROWS_WITH(file.read_f32("dbl"), Catch::Contains("'dbl'") && Catch::Contains("-inf"));
  CHECK(file.read_f32("empty").empty());
  CHECK(file.at("scalar").numel() == 1);
  CHECK(file.at("scalar").shape.empty());

  // Re-saving what was loaded reproduces the file byte for byte.
  std::vector<SafetensorsEntry> again;
  for (const auto& t : file.tensors()) again.push_back({t.name, t.dtype, t.shape, t.data});
  save_safetensors(dir / "again.safetensors", again, file.metadata());
  CHECK(read_file(dir / "again.safetensors") == read_file(path));
  // Header is padded to a multiple of 8 so the data section is 8-aligned.
  const auto bytes = read_file(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);

  CHECK_THROWS_WITH(file.at("missing"), Catch::Contains("model.safetensors") && Catch::Contains("'missing'"));
  CHECK_THROWS_WITH(file.read_f32("ids"),
                    Catch::Contains("'ids'") && Catch::Contains("I64 cannot be read as float"));
  const std::int64_t expected_shape[] = {5, 6};
  CHECK_THROWS_WITH(file.expect("wte.weight", expected_shape),
                    Catch::Contains("wte.weight") && Catch::Contains("[6, 5], expected [5, 6]"));
  fs::remove_all(dir);
}

TEST_CASE("safetensors writer refuses inconsistent tensors and leaves no file", "[io][safetensors]") {
  const auto dir = temp_dir("p4lm_test_safetensors_w");
  const std::vector<float> v(5);
  CHECK_THROWS_WITH(save_safetensors(dir / "x.safetensors", {tensor_f32("a", {2, 3}, v)}),
                    Catch::Contains("'a' has 20 bytes") && Catch::Contains("needs 24"));
  CHECK_THROWS_WITH(
      save_safetensors(dir / "x.safetensors", {tensor_f32("a", {5}, v), tensor_f32("a", {5}, v)}),
      Catch::Contains("duplicate tensor 'a'"));
  CHECK_THROWS_AS(save_safetensors(dir / "x.safetensors", {tensor_f32("__metadata__", {5}, v)}),
                  p4lm::InvalidArgument);
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_CASE("safetensors reader rejects every malformed file, naming file and tensor", "[io][safetensors]") {
  using Catch::Contains;
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse(ok, 8).names() == std::vector<std::string>{"a"});

  SECTION("truncated file") {
    const auto dir = temp_dir("p4lm_test_safetensors_r");
    std::vector<float> v(16, 1.0f);
    save_safetensors(dir / "t.safetensors", {tensor_f32("w", {16}, v)});
    const auto full = read_file(dir / "t.safetensors");
    write_file_atomically(dir / "t.safetensors", std::string_view(full).substr(0, full.size() - 4));
    CHECK_THROWS_WITH(SafetensorsFile::open(dir / "t.safetensors"), Contains("t.safetensors") &&
                                                                        Contains("field 'w'") &&
                                                                        Contains("past the data section"));
    write_file_atomically(dir / "t.safetensors", std::string_view(full).substr(0, 5));
    CHECK_THROWS_WITH(SafetensorsFile::open(dir / "t.safetensors"),
                      Contains("less than the 8-byte header length"));
    CHECK_THROWS_WITH(SafetensorsFile::open(dir / "none.safetensors"),
                      Contains("none.safetensors: cannot open"));
    CHECK_THROWS_AS(SafetensorsFile::open(dir), p4lm::IoError);  // a folder, not a file
    fs::remove_all(dir);
  }
  SECTION("header length past the end of the file or over the limit") {
    CHECK_THROWS_WITH(parse(ok, 8, 1000),
                      Contains("bad.safetensors") && Contains("header length 1000 runs past"));
    CHECK_THROWS_WITH(parse(ok, 8, std::uint64_t{1} << 62), Contains("exceeds the 100 MB limit"));
  }
  SECTION("header is not JSON") {
    CHECK_THROWS_WITH(parse("[1,2]   ", 0), Contains("not a JSON object"));
    CHECK_THROWS_WITH(parse("{\"a\":", 0), Contains("not valid JSON"));
  }
  SECTION("bad dtype") {
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2),
                      Contains("field 'a'") && Contains("unknown dtype 'F8_E4M3'"));
  }
  SECTION("overlapping offsets") {
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            12),
                      Contains("field 'b'") && Contains("overlaps"));
  }
  SECTION("gap between tensors and trailing bytes") {
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                      Contains("field 'a'") && Contains("leaves a gap"));
    CHECK_THROWS_WITH(parse(ok, 12), Contains("cover 8 of the 12 data bytes"));
  }
  SECTION("offsets out of range, reversed, or not matching the shape") {
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                      Contains("field 'a'") && Contains("end 16 is past the data section (8 bytes)"));
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                      Contains("reversed"));
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                      Contains("shape [3] x F32 needs 12"));
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                      Contains("negative or non-integer dimension"));
    CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2]}})", 8),
                      Contains("needs dtype, shape and data_offsets"));
  }
  SECTION("bad metadata") {
    CHECK_THROWS_WITH(parse(R"({"__metadata__":{"k":1}})", 0),
                      Contains("metadata value of 'k' is not a string"));
  }
}

TEST_CASE("f16 and bf16 conversions match the compiler's and round to nearest even", "[io][safetensors]") {
  std::size_t mismatches = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_float(static_cast<std::uint16_t>(h));
    _Float16 native;
    const auto h16 = static_cast<std::uint16_t>(h);
    std::memcpy(&native, &h16, 2);
    if (std::isnan(f)) {
      mismatches += !std::isnan(static_cast<float>(native)) || !std::isnan(f16_to_float(float_to_f16(f)));
      continue;
    }
    const float widened = static_cast<float>(native);
    mismatches += std::memcmp(&f, &widened, 4) != 0;
    mismatches += float_to_f16(f) != h;
  }
  CHECK(mismatches == 0);
  // Random floats of every magnitude: rounding agrees with the compiler's _Float16 conversion.
  std::mt19937 rng(11);
  std::size_t rounding = 0;
  for (int i = 0; i < 200000; ++i) {
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
    if (std::isnan(f)) continue;
    const _Float16 native = static_cast<_Float16>(f);
    std::uint16_t bits;
    std::memcpy(&bits, &native, 2);
    rounding += float_to_f16(f) != bits;
  }
  CHECK(rounding == 0);
  CHECK(float_to_bf16(1.0f) == 0x3F80);
  CHECK(float_to_bf16(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie -> even
  CHECK(float_to_bf16(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // tie -> even (up)
  CHECK(float_to_bf16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
  CHECK(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  CHECK(bf16_to_float(0xC040) == -3.0f);
}
