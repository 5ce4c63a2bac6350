#pragma once
// Writes that never leave a partial file: content goes to a temporary file in the target's folder,
// is flushed, and only then renamed over the target (rename is atomic within one file system).
//
// The temporary is `<target>.tmp.<pid>.<random>`. A writer killed mid-write (kill -9, power loss)
// leaves its temporary behind; the next write of the same target removes those whose writer process
// is gone (no process with that pid on this machine) or that are older than a day (a writer on
// another machine sharing the folder), so repeated kills do not pile files up. A live writer's
// temporary is never touched.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <sys/types.h>
#include <unistd.h>

#include "p4lm/core/error.hpp"

namespace p4lm::io {

namespace detail {

// Whether a process with this pid exists on this machine (EPERM: it exists, owned by someone else).
inline bool process_alive(long pid) {
  if (pid <= 0 || static_cast<long>(static_cast<pid_t>(pid)) != pid) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// Removes `<target>.tmp.*` files in `dir` left by writers that are gone (see the header comment);
// best effort: a file that cannot be inspected or removed is left alone.
inline void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& target) {
  namespace fs = std::filesystem;
  const std::string prefix = target + ".tmp.";
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // <pid>.<random> since this scheme; one number (an older p4lm's <random>) has no pid to check.
    const std::string rest = name.substr(prefix.size());
    const auto dot = rest.find('.');
    long pid = -1;
    if (dot != std::string::npos && dot > 0 && rest.find_first_not_of("0123456789") == dot) {
      try {
        pid = std::stol(rest.substr(0, dot));
      } catch (const std::exception&) {
        pid = -1;
      }
    }
    std::error_code time_ec;
    const auto written = fs::last_write_time(it->path(), time_ec);
    const bool old = !time_ec && now - written > std::chrono::hours(24);
    const bool orphan = pid > 0 ? pid != static_cast<long>(::getpid()) && !process_alive(pid) : false;
    if (orphan || old) fs::remove(it->path(), time_ec);
  }
}

}  // namespace detail

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
  detail::remove_stale_temporaries(dir, path.filename().string());
  std::random_device entropy;
  const fs::path tmp = dir / (path.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                              std::to_string(entropy()));
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
