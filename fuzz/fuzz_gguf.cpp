// io::GgufFile::parse on arbitrary bytes, then every dequantizable tensor dequantized.
#include <vector>

#include <p4lm/io/gguf.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(data[i]);
  p4lm_fuzz::expect_clean([&] {
    const auto file = p4lm::io::GgufFile::parse(std::move(bytes), "fuzz.gguf");
    for (const auto& t : file.tensors()) p4lm_fuzz::expect_clean([&] { (void)file.dequantize(t.name); });
  });
  return 0;
}
