#pragma once
// Kill -9 at random moments of a training run, then the same run again: the run folder must end byte
// for byte as an uninterrupted run's. Shared by the kill tests of every trainer (tests/train,
// tests/reward, tests/pipeline). Each run is the test program itself re-executed as a child process
// (a hidden test case of the calling file, named by `child_case`, does the run's work) so it can be
// killed like a real run.
//
//   TEST_CASE("kill-resume child", "[.]") {              // hidden: the child's work
//     if (const char* out = p4lm_test::kill_resume::child_out()) my_run(out);
//   }
//   p4lm_test::kill_resume::kill_and_resume({.kind = "sft", .progress_file = "train_metrics.jsonl"});
//
// The kill moments are random points of the run's progress, not of wall time (which a loaded machine
// stretches): a round draws a line k of the uninterrupted run's progress file, waits until the child
// has written k lines, waits a further random 0..max_extra_us microseconds (inside the next step, a
// checkpoint write, ...) and kills it. The draws are printed on failure.

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "p4lm/io/atomic_file.hpp"

extern char** environ;

namespace p4lm_test::kill_resume {

namespace fs = std::filesystem;

inline constexpr const char* child_case = "kill-resume child";

// In the child: the run's kind, its output folder and the parent's input (nullptr in a normal run).
inline const char* child_kind() {
  return std::getenv("P4LM_KILL_CHILD");
}
inline const char* child_out() {
  return std::getenv("P4LM_KILL_OUT");
}
inline const char* child_input() {
  return std::getenv("P4LM_KILL_INPUT");
}

// Starts this program as a child running the hidden test case for `kind` into `out`.
inline pid_t spawn_child(const std::string& kind, const fs::path& out, const std::string& input) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings{"P4LM_KILL_CHILD=" + kind, "P4LM_KILL_OUT=" + out.string(),
                                       "P4LM_KILL_INPUT=" + input};
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string a0 = self, a1 = child_case;
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  return pid;
}

inline int wait_child(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Every file under `dir` (relative path -> bytes).
inline std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = p4lm::io::read_file(e.path());
  return out;
}

inline std::size_t lines_of(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return 0;
  const std::string text = p4lm::io::read_file(file);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

struct Plan {
  std::string kind;
  std::vector<std::string> progress_files;  // in the run folder; their lines together are the progress
  std::string input = {};                   // handed to the child (a fixture's folder)
  int max_extra_us = 3000;                  // random wait after the drawn progress point
  int rounds = 3;
};

inline std::size_t progress_of(const Plan& plan, const fs::path& run) {
  std::size_t n = 0;
  for (const auto& f : plan.progress_files) n += lines_of(run / f);
  return n;
}

// Runs `plan.kind` uninterrupted into <tmp>/straight, then into <tmp>/killed killed plan.rounds times
// at random progress points and rerun to the end; requires the same files with the same bytes.
inline void kill_and_resume(const Plan& plan) {
  const fs::path root =
      fs::temp_directory_path() / ("p4lm_test_kill_" + plan.kind + "_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto t0 = std::chrono::steady_clock::now();
  const int clean = wait_child(spawn_child(plan.kind, root / "straight", plan.input));
  REQUIRE(WIFEXITED(clean));
  REQUIRE(WEXITSTATUS(clean) == 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t total = progress_of(plan, root / "straight");
  REQUIRE(total > 2);
  std::random_device entropy;
  const unsigned seed = entropy();
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::size_t> line(1, total - 1);
  std::uniform_int_distribution<int> extra_us(0, plan.max_extra_us);
  std::string kills;
  int killed = 0;
  std::vector<std::size_t> targets;
  for (int r = 0; r < plan.rounds; ++r) targets.push_back(line(gen));
  std::sort(targets.begin(), targets.end());  // later rounds resume past the earlier kills
  for (const std::size_t at : targets) {
    const int us = extra_us(gen);
    const pid_t pid = spawn_child(plan.kind, root / "killed", plan.input);
    int status = 0;
    bool exited = false;
    while (!(exited = ::waitpid(pid, &status, WNOHANG) == pid) && progress_of(plan, root / "killed") < at)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (!exited) {
      std::this_thread::sleep_for(std::chrono::microseconds(us));
      ::kill(pid, SIGKILL);
      status = wait_child(pid);
    }
    killed += WIFSIGNALED(status) ? 1 : 0;
    kills += "line " + std::to_string(at) + " + " + std::to_string(us) + " us" +
             (WIFSIGNALED(status) ? " (killed), " : " (had finished), ");
  }
  INFO(plan.kind << ": uninterrupted run " << seconds << " s, " << total << " progress lines; kills at "
                 << kills << "(seed " << seed << ")");
  const int last = wait_child(spawn_child(plan.kind, root / "killed", plan.input));
  REQUIRE(WIFEXITED(last));
  REQUIRE(WEXITSTATUS(last) == 0);
  CHECK(killed >= 1);
  const auto a = folder_bytes(root / "straight"), b = folder_bytes(root / "killed");
  std::vector<std::string> names_a, names_b;
  for (const auto& [k, v] : a) names_a.push_back(k);
  for (const auto& [k, v] : b) names_b.push_back(k);
  REQUIRE(names_a == names_b);
  for (const auto& [name, bytes] : a) {
    INFO(name);
    CHECK(b.at(name) == bytes);
  }
  fs::remove_all(root);
}

}  // namespace p4lm_test::kill_resume
