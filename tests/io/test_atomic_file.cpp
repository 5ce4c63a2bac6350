#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <p4lm/io/atomic_file.hpp>

namespace fs = std::filesystem;

TEST_CASE("write_atomically replaces the file only when the writer succeeds", "[io][atomic]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_atomic";
  fs::remove_all(dir);
  const auto path = dir / "sub" / "file.txt";
  p4lm::io::write_file_atomically(path, "first");
  CHECK(p4lm::io::read_file(path) == "first");

  CHECK_THROWS_AS(p4lm::io::write_atomically(path,
                                             [](std::ostream& out) {
                                               out << "partial";
                                               throw p4lm::Error("writer failed");
                                             }),
                  p4lm::Error);
  CHECK(p4lm::io::read_file(path) == "first");
  // No temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()) == 1);
  CHECK_THROWS_WITH(p4lm::io::read_file(dir / "missing"), Catch::Contains("missing: cannot open"));
  CHECK_THROWS_WITH(p4lm::io::read_file(dir), Catch::Contains("is a folder"));
  fs::remove_all(dir);
}

namespace {
// The pid of a process that has exited (a child, reaped): the pid of a killed writer.
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return static_cast<long>(child);
}
}  // namespace

TEST_CASE("a write removes the stale temporaries of killed writers of the same target", "[io][atomic]") {
  const auto dir = fs::temp_directory_path() / ("p4lm_test_atomic_stale_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto dead = std::to_string(dead_pid());
  auto touch = [&](const std::string& name) {
    std::ofstream(dir / name) << "partial";
    return dir / name;
  };
  const auto stale = touch("ckpt.safetensors.tmp." + dead + ".1234");
  const auto stale2 = touch("ckpt.safetensors.tmp." + dead + ".99");
  const auto live = touch("ckpt.safetensors.tmp." + std::to_string(::getppid()) + ".5");  // a running writer
  const auto own = touch("ckpt.safetensors.tmp." + std::to_string(::getpid()) + ".6");    // this process
  const auto legacy_old = touch("ckpt.safetensors.tmp.3141592");  // older scheme, no pid
  const auto legacy_new = touch("ckpt.safetensors.tmp.2718281");
  fs::last_write_time(legacy_old, fs::file_time_type::clock::now() - std::chrono::hours(48));
  const auto other = touch("other.json.tmp." + dead + ".1");  // another target: not this write's business

  p4lm::io::write_file_atomically(dir / "ckpt.safetensors", "done");
  CHECK(p4lm::io::read_file(dir / "ckpt.safetensors") == "done");
  CHECK_FALSE(fs::exists(stale));
  CHECK_FALSE(fs::exists(stale2));
  CHECK_FALSE(fs::exists(legacy_old));
  CHECK(fs::exists(live));
  CHECK(fs::exists(own));
  CHECK(fs::exists(legacy_new));
  CHECK(fs::exists(other));
  fs::remove_all(dir);
}
