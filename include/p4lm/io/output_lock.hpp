#pragma once
// An exclusive lock on an output folder, so that two runs writing the same --out cannot interleave
// their checkpoints and metrics: the second one stops with an error naming the holder.
//
//   p4lm::io::OutputLock lock(out);   // throws IoError "out: in use by pid 4242 on host h (since ...)"
//
// The lock is flock(2) on out/.p4lm.lock, which the kernel releases when the holder exits however it
// dies (kill -9 included): a lock file left by a dead process is stale and simply taken over. The
// file records the holder (pid, host, start time) for the error message and is removed on release.
// Locks are re-entrant within a process (a stage locks its folder, the trainer inside it again).
// A folder the lock created is removed again on release if nothing was written into it, so a run
// that fails before its first result leaves no empty output folder behind. Not for NFS.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <system_error>

#include "p4lm/core/error.hpp"

namespace p4lm::io {

class OutputLock {
 public:
  static constexpr const char* file_name = ".p4lm.lock";

  OutputLock() = default;
  explicit OutputLock(const std::filesystem::path& folder) { acquire(folder); }
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  OutputLock(OutputLock&& o) noexcept : key_(std::move(o.key_)) { o.key_.clear(); }
  OutputLock& operator=(OutputLock&& o) noexcept {
    if (this != &o) {
      release();
      key_ = std::move(o.key_);
      o.key_.clear();
    }
    return *this;
  }
  ~OutputLock() { release(); }

  bool held() const noexcept { return !key_.empty(); }

  // What the lock file of `folder` says about its holder ("" when there is none).
  static std::string holder(const std::filesystem::path& folder) {
    const int fd = ::open((folder / file_name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    std::string s(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

 private:
  struct Held {
    int fd = -1;
    int count = 0;
    bool created_folder = false;
  };
  static std::map<std::string, Held>& table() {
    static std::map<std::string, Held> t;
    return t;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }

  void acquire(const std::filesystem::path& folder) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool existed = fs::exists(folder, ec);
    fs::create_directories(folder, ec);
    if (ec) fail<IoError>(folder.string(), ": cannot create output folder: ", ec.message());
    const std::string key = fs::canonical(folder).string();
    std::lock_guard<std::mutex> guard(mutex());
    auto& held = table()[key];
    if (held.count > 0) {  // this process holds it already
      ++held.count;
      key_ = key;
      return;
    }
    const fs::path path = fs::path(key) / file_name;
    // Another process may remove the file between our open and our flock (it releases the lock):
    // retry until the locked file is the one at the path.
    for (int attempt = 0;; ++attempt) {
      const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) fail<IoError>(path.string(), ": cannot open lock file: ", std::strerror(errno));
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(fd);
        table().erase(key);
        if (err == EWOULDBLOCK) {
          const std::string who = holder(folder);
          fail<IoError>(folder.string(), ": in use by another run (", who.empty() ? "holder unknown" : who,
                        "); wait for it to finish or choose another output folder");
        }
        fail<IoError>(path.string(), ": cannot lock: ", std::strerror(err));
      }
      struct stat by_fd {
      }, by_path{};
      if (::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
          by_fd.st_dev == by_path.st_dev) {
        held.fd = fd;
        break;
      }
      ::close(fd);
      if (attempt > 100) fail<IoError>(path.string(), ": lock file keeps changing");
    }
    // The holder's identity (a stale file of a dead process is overwritten here).
    char host[256] = "?";
    ::gethostname(host, sizeof host - 1);
    const std::time_t now = std::time(nullptr);
    char when[32] = "";
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    const std::string who =
        "pid " + std::to_string(::getpid()) + " on host " + host + ", since " + when + "\n";
    if (::ftruncate(held.fd, 0) != 0 || ::pwrite(held.fd, who.data(), who.size(), 0) < 0) {
      // Only the message suffers; the lock itself is held.
    }
    held.count = 1;
    held.created_folder = !existed;
    key_ = key;
  }

  void release() noexcept {
    if (key_.empty()) return;
    std::lock_guard<std::mutex> guard(mutex());
    auto it = table().find(key_);
    if (it != table().end() && --it->second.count <= 0) {
      namespace fs = std::filesystem;
      std::error_code ec;
      fs::remove(fs::path(key_) / file_name, ec);  // while still locked: nobody holds the old inode
      ::close(it->second.fd);
      if (it->second.created_folder && fs::is_empty(key_, ec)) fs::remove(key_, ec);
      table().erase(it);
    }
    key_.clear();
  }

  std::string key_;
};

}  // namespace p4lm::io
