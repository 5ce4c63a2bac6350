// The shared non-finite check of every weight loader (io/finite.hpp), through safetensors and
// llama2.c files holding a NaN or an infinity.

#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/finite.hpp>
#include <p4lm/io/llama2c.hpp>
#include <p4lm/io/safetensors.hpp>

namespace fs = std::filesystem;
using Catch::Contains;

namespace {
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

fs::path scratch(const char* name) {
  const auto dir = fs::temp_directory_path() / ("p4lm_test_finite_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}
}  // namespace

TEST_CASE("first_non_finite finds the first NaN or infinity, and only those", "[io][finite]") {
  using p4lm::io::first_non_finite;
  std::vector<double> v(1000, 1e300);  // a sum of these overflows, yet every element is finite
  CHECK(first_non_finite<double>(v) == v.size());
  v[717] = -std::numeric_limits<double>::infinity();
  v[900] = std::numeric_limits<double>::quiet_NaN();
  CHECK(first_non_finite<double>(v) == 717);
  CHECK(first_non_finite<float>(std::vector<float>{}) == 0);
  CHECK(first_non_finite<float>(std::vector<float>{0.0f, std::numeric_limits<float>::max()}) == 2);
  CHECK_THROWS_WITH(p4lm::io::require_finite<float>(std::vector<float>{1.0f, nan_f}, "m.bin", "wq"),
                    Contains("m.bin") && Contains("'wq'") && Contains("element 1 of 2 is NaN"));
}

TEST_CASE("safetensors read_f32 refuses NaN and infinity in any float dtype", "[io][finite][safetensors]") {
  const auto path = scratch("w.safetensors");
  const std::vector<float> values{1.0f, 2.0f, inf_f};
  p4lm::io::save_safetensors(path, {p4lm::io::tensor_f32("bad", {3}, values),
                                    p4lm::io::tensor_f32("good", {2}, std::vector<float>{1.0f, 2.0f})});
  const auto file = p4lm::io::SafetensorsFile::open(path);
  CHECK(file.read_f32("good") == std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_WITH(file.read_f32("bad"),
                    Contains("w.safetensors") && Contains("'bad'") && Contains("element 2 of 3 is +inf"));
  // F16 0x7e00 is NaN.
  const std::uint16_t half[2] = {0x3c00, 0x7e00};
  p4lm::io::save_safetensors(
      path, {p4lm::io::SafetensorsEntry{"h", p4lm::io::Dtype::F16, {2}, std::as_bytes(std::span(half))}});
  CHECK_THROWS_WITH(p4lm::io::SafetensorsFile::open(path).read_f32("h"), Contains("'h'") && Contains("NaN"));
  fs::remove_all(path.parent_path());
}

TEST_CASE("llama2.c loader refuses a NaN weight, naming the tensor", "[io][finite][llama2c]") {
  const std::vector<std::int32_t> header{8, 16, 1, 2, 2, 4, 4};
  p4lm::io::Llama2cConfig config{8, 16, 1, 2, 2, 4, 4, true};
  std::size_t floats = 0, w2_at = 0, freq_at = 0;
  for (const auto& e : p4lm::io::detail::llama2c_layout(config)) {
    std::size_t n = 1;
    for (auto d : e.shape) n *= d;
    if (std::string(e.name) == "w2") w2_at = floats + 5;
    if (std::string(e.name) == "freq_cis_real") freq_at = floats;
    floats += n;
  }
  std::vector<float> body(floats, 0.5f);
  std::string bytes(header.size() * 4, '\0');
  std::memcpy(bytes.data(), header.data(), bytes.size());
  auto write = [&] {
    std::string file = bytes;
    file.append(reinterpret_cast<const char*>(body.data()), body.size() * 4);
    p4lm::io::write_file_atomically(scratch("m.bin"), file);
  };
  body[freq_at] = nan_f;  // in a table the loader skips (RoPE is recomputed): no harm
  write();
  CHECK_NOTHROW(p4lm::io::load_llama2c(scratch("m.bin")));
  body[w2_at] = nan_f;
  write();
  CHECK_THROWS_WITH(p4lm::io::load_llama2c(scratch("m.bin")),
                    Contains("m.bin") && Contains("'w2'") && Contains("element 5") && Contains("NaN"));
  fs::remove_all(scratch("m.bin").parent_path());
}
