#pragma once
// Shared by the libFuzzer targets: an input as a temporary file (for loaders that read paths), and
// the rule every target checks: malformed input may only end in a p4lm::Error (which names the file,
// line, field or tensor). Anything else escaping (std::bad_alloc, std::out_of_range, an nlohmann
// exception) is a crash for libFuzzer, as are the sanitizers' reports.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

#include <p4lm/core/error.hpp>

namespace p4lm_fuzz {

// A path in the temporary folder, the same for every input of one process (inputs run one by one).
inline std::filesystem::path scratch(const std::string& name) {
  static const auto dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("p4lm_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir / name;
}

inline std::filesystem::path write(const std::string& name, std::string_view bytes) {
  const auto path = scratch(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Runs f; a p4lm::Error is the expected answer to bad input and is swallowed.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const p4lm::Error&) {
  }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace p4lm_fuzz
