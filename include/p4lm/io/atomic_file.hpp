#pragma once
// Writes that never leave a partial file: content goes to a temporary file in the target's folder,
// is flushed, and only then renamed over the target (rename is atomic within one file system).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "p4lm/core/error.hpp"

namespace p4lm::io {

// Calls write(std::ostream&) on a temporary file next to `path` and renames it to `path` when the
// callback returns normally. If the callback throws or the stream fails, the target is untouched
// and the temporary file is removed.
template <class Writer>
void write_atomically(const std::filesystem::path& path, Writer&& write,
                      std::ios::openmode mode = std::ios::binary) {
  namespace fs = std::filesystem;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail<IoError>(path.string(), ": cannot create folder ", dir.string(), ": ", ec.message());
  std::random_device entropy;
  const fs::path tmp = dir / (path.filename().string() + ".tmp." + std::to_string(entropy()));
  try {
    {
      std::ofstream out(tmp, mode | std::ios::out | std::ios::trunc);
      if (!out) fail<IoError>(tmp.string(), ": cannot open for writing");
      std::forward<Writer>(write)(static_cast<std::ostream&>(out));
      out.flush();
      if (!out) fail<IoError>(tmp.string(), ": write failed (disk full?)");
    }
    fs::rename(tmp, path, ec);
    if (ec) fail<IoError>(path.string(), ": cannot rename temporary file: ", ec.message());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

inline void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  write_atomically(path, [&](std::ostream& out) {
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  });
}

// Reads a whole file; the error names the file.
inline std::string read_file(const std::filesystem::path& path) {
  // A folder opens as a stream on Linux and reports a bogus size: refuse it by name.
  if (std::filesystem::is_directory(path)) fail<IoError>(path.string(), ": is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail<IoError>(path.string(), ": read failed");
  return content;
}

}  // namespace p4lm::io
