// io::SafetensorsFile::parse on arbitrary bytes, then every tensor read as float and as integers.
#include <vector>

#include <p4lm/io/safetensors.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(data[i]);
  p4lm_fuzz::expect_clean([&] {
    const auto file = p4lm::io::SafetensorsFile::parse(std::move(bytes), "fuzz.safetensors");
    for (const auto& t : file.tensors()) {
      p4lm_fuzz::expect_clean([&] { (void)file.read_f32(t.name); });
      p4lm_fuzz::expect_clean([&] { (void)file.read_i64(t.name); });
      p4lm_fuzz::expect_clean([&] { (void)file.expect(t.name, t.shape); });
    }
    (void)file.metadata();
  });
  return 0;
}
