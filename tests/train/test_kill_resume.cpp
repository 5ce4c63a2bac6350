// Kill -9 at a random moment, then the same command: the run folder ends byte for byte as the
// uninterrupted run's (checkpoint, metrics, config), for train-lm and for SFT. Each run is this
// test program re-executed as a child process (the hidden test case below) so it can be killed like
// a real run; the kill moments are random points of the run's progress, printed on failure.

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/sft.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;

p4lm::ModelConfig tiny(std::size_t vocab, std::size_t max_seq) {
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = vocab, c.d_model = 16, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1;
  c.d_ff = 32, c.max_seq = max_seq;
  return c;
}

// The child's work: what `p4lm train-lm` does through the library (same entry point).
void train_lm_child(const fs::path& out) {
  p4lm::LlamaLM<float> lm(tiny(32, 32));
  p4lm::Rng rng(5);
  lm.init_random(rng);
  std::vector<std::int32_t> stream(2000);
  for (std::size_t i = 0; i < stream.size(); ++i)
    stream[i] = static_cast<std::int32_t>((i * 7 + i / 11) % 32);
  p4lm::train::train_next_token(lm, stream,
                                {.batch = 4,
                                 .seq = 16,
                                 .steps = 400,
                                 .lr = 3e-3,
                                 .warmup = 10,
                                 .save_every = 13,
                                 .out = out,
                                 .progress = false,
                                 .fingerprint = {{"data", "synthetic"}},
                                 .run_files = {{"config.json", "{\"steps\": 400}\n"}}});
}

// The child's work for SFT: both stages with the link weight, evaluations with the shuffled control.
void sft_child(const fs::path& out) {
  using LM = p4lm::LlamaLM<float>;
  using Adapter = p4lm::CFAdapter<4, 1, float>;
  LM lm(tiny(16, 24));
  p4lm::Rng rng(1);
  lm.init_random(rng, 0.2);
  Adapter adapter(lm.config().d_model);
  adapter.init_random(rng, 0.2);
  p4lm::cf::Embeddings<4> cf(8, 4);
  for (auto& v : cf.users) v = static_cast<float>(rng.normal());
  for (auto& v : cf.items) v = static_cast<float>(rng.normal());
  std::vector<p4lm::train::SftSequence> train, held_out;
  for (int u = 0; u < 8; ++u)
    for (int i = 0; i < 4; ++i) {
      p4lm::train::SftSequence q;
      q.user = u, q.item = i, q.user_id = u, q.movie_id = i;
      const int f = 5 + u % 4;
      q.ids = {1, 10 + i, 3, f, f, 10 + i, 4, 2};
      q.prompt_len = 3, q.link_begin = 3, q.link_end = 5;
      ((u + i) % 4 == 0 ? held_out : train).push_back(q);
    }
  p4lm::train::SftOptions o{.batch_size = 4,
                            .stage1_steps = 60,
                            .stage2_steps = 240,
                            .stage2_adapter_lr = 4e-3,
                            .warmup_steps = 5,
                            .link_weight = 3,
                            .link_weight_steps = 100,
                            .eval_every = 25,
                            .log_every = 5,
                            .checkpoint_every = 11,
                            .progress = false};
  p4lm::train::SftTrainer<LM, Adapter> trainer(lm, &adapter, &cf, train, held_out, o, out,
                                               nlohmann::json{{"data", "synthetic"}},
                                               {{"config.json", "{\"sft\": true}\n"}});
  trainer.resume();
  trainer.fit();
  trainer.save_model(out / "model.safetensors");
}

// Starts this program as a child running `kind` into `out`.
pid_t spawn_child(const std::string& kind, const fs::path& out) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string env_kind = "P4LM_KILL_CHILD=" + kind, env_out = "P4LM_KILL_OUT=" + out.string();
  std::vector<std::string> env_strings{env_kind, env_out};
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string a0 = self, a1 = "kill-resume child";
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = p4lm::io::read_file(e.path());
  return out;
}

std::size_t lines_of(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return 0;
  const std::string text = p4lm::io::read_file(file);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The kill moments are random points of the run's progress, not of wall time (which a loaded machine
// stretches): a round draws a metrics line k of the uninterrupted run, waits until the child has
// written k lines, waits a further random 0-3 ms (inside the next step, a checkpoint write, ...) and
// kills it.
void kill_and_resume(const std::string& kind) {
  const fs::path root =
      fs::temp_directory_path() / ("p4lm_test_kill_" + kind + "_" + std::to_string(::getpid()));
  const std::string metrics = kind == "sft" ? "train_metrics.jsonl" : "metrics.jsonl";
  fs::remove_all(root);
  const auto t0 = std::chrono::steady_clock::now();
  const int clean = wait_child(spawn_child(kind, root / "straight"));
  REQUIRE(WIFEXITED(clean));
  REQUIRE(WEXITSTATUS(clean) == 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t total_lines = lines_of(root / "straight" / metrics);
  REQUIRE(total_lines > 2);
  std::random_device entropy;
  const unsigned seed = entropy();
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::size_t> line(1, total_lines - 1);
  std::uniform_int_distribution<int> extra_us(0, 3000);
  std::string kills;
  int killed = 0;
  std::vector<std::size_t> targets{line(gen), line(gen), line(gen)};
  std::sort(targets.begin(), targets.end());  // later rounds resume past the earlier kills
  for (const std::size_t at : targets) {
    const int us = extra_us(gen);
    const pid_t pid = spawn_child(kind, root / "killed");
    int status = 0;
    bool exited = false;
    while (!(exited = ::waitpid(pid, &status, WNOHANG) == pid) && lines_of(root / "killed" / metrics) < at)
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
  INFO(kind << ": uninterrupted run " << seconds << " s, " << total_lines << " metrics lines; kills at "
            << kills << "(seed " << seed << ")");
  const int last = wait_child(spawn_child(kind, root / "killed"));
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

}  // namespace

TEST_CASE("kill-resume child", "[.]") {  // hidden: run only by kill_and_resume as a child process
  const char* kind = std::getenv("P4LM_KILL_CHILD");
  const char* out = std::getenv("P4LM_KILL_OUT");
  if (!kind || !out) return;
  if (std::string(kind) == "train-lm") train_lm_child(out);
  if (std::string(kind) == "sft") sft_child(out);
}

TEST_CASE("train-lm: kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[train][trainer][kill]") {
  kill_and_resume("train-lm");
}

TEST_CASE("sft: kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[train][sft][kill]") {
  kill_and_resume("sft");
}
