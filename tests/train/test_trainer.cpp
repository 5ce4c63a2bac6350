// The shared Trainer (train/trainer.hpp) on a toy objective whose every step can be computed by
// hand: phases and their schedules, gradient accumulation, callbacks, the non-finite guard, resume
// refusal, the output-folder lock, and that a run that fails leaves nothing that looks like a result.
// Kill -9 equivalence of train-lm and SFT is in test_kill_resume.cpp.

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using p4lm::train::StepLoss;

// One parameter vector w of 3 values; the loss of batch k is 0.5 |w - target(k)|², gradient w - target.
template <class T = double>
struct QuadraticT {
  using value_type = T;
  p4lm::CpuTensor<T> value{p4lm::Shape{3}}, grad{p4lm::Shape{3}};
  std::vector<p4lm::Parameter<T>> params{{"w", value.view(), grad.view()}};
  std::span<p4lm::Parameter<T>> parameters() { return params; }
  void zero_grad() { grad.zero(); }
};
using Quadratic = QuadraticT<double>;

struct QuadraticObjective {
  double nan_loss_at = -1;  // flat batch index whose loss is NaN
  double inf_grad_at = -1;  // ... whose gradient of w[1] is infinite (loss finite)
  std::size_t micro = 1;
  std::vector<std::size_t> phases_begun;
  struct Batch {
    std::size_t index;
  };
  static double target(std::size_t k, std::size_t i) { return 0.1 * static_cast<double>(k % 5) + double(i); }
  Batch batch(std::size_t step, std::size_t m) const { return {step * micro + m}; }
  template <class Q>
  StepLoss loss(Q& q, const Batch& b) {
    double l = 0;
    for (std::size_t i = 0; i < 3; ++i) {
      const double d = static_cast<double>(q.value.data()[i]) - target(b.index, i);
      q.grad.data()[i] += static_cast<typename Q::value_type>(d);
      l += 0.5 * d * d;
    }
    if (static_cast<double>(b.index) == inf_grad_at)
      q.grad.data()[1] = std::numeric_limits<double>::infinity();
    if (static_cast<double>(b.index) == nan_loss_at) l = std::numeric_limits<double>::quiet_NaN();
    return {l, 1};
  }
  template <class Q>
  std::map<std::string, double> evaluate(Q& q) {
    return {{"eval_loss", static_cast<double>(q.value.data()[0])}};
  }
  template <class Q>
  void begin_phase(Q&, std::size_t p) {
    phases_begun.push_back(p);
  }
};

p4lm::train::TrainerOptions toy_options(const fs::path& out = {}) {
  p4lm::train::TrainerOptions o;
  o.phases = {{.steps = 4,
               .schedule = {.peak_lr = 0.1, .warmup_steps = 2, .total_steps = 4, .min_lr = 0.01},
               .optimizer = {.lr = 0.1, .max_grad_norm = 0},
               .fields = {{"stage", 1}}},
              {.steps = 3,
               .schedule = {.peak_lr = 0.05, .warmup_steps = 0, .total_steps = 3},
               .optimizer = {.lr = 0.05, .max_grad_norm = 0},
               .fields = {{"stage", 2}}}};
  o.out = out;
  o.progress = false;
  return o;
}

struct Counter {
  int runs = 0, steps = 0, evals = 0, phases = 0, saves = 0;
  std::vector<double> lrs;
  std::size_t stop_at = 0;
  template <class T>
  void begin_run(T&) {
    ++runs;
  }
  template <class T, class I>
  bool end_step(T&, const I& info) {
    ++steps;
    lrs.push_back(info.lr);
    return stop_at && info.step >= stop_at;
  }
  template <class T>
  void end_eval(T&, std::size_t, const std::map<std::string, double>&) {
    ++evals;
  }
  template <class T>
  void begin_phase(T&, std::size_t) {
    ++phases;
  }
  template <class T>
  void checkpoint_saved(T&, const fs::path&) {
    ++saves;
  }
};

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("p4lm_test_trainer_" + name)) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("trainer: phases, schedules, evaluation and callbacks on a hand-computable objective",
          "[train][trainer]") {
  Quadratic model;
  QuadraticObjective objective;
  Counter counter;
  p4lm::train::Trainer trainer(model, objective, toy_options(), counter);
  const auto r = trainer.fit();
  CHECK(r.step == 7);
  CHECK_FALSE(r.stopped);
  CHECK(counter.runs == 1);
  CHECK(counter.steps == 7);
  CHECK(counter.evals == 2);  // the end of each phase
  CHECK(counter.phases == 2);
  CHECK(objective.phases_begun == std::vector<std::size_t>{0, 1});
  // Each phase's schedule runs on the step within the phase.
  const p4lm::WarmupCosine s1{.peak_lr = 0.1, .warmup_steps = 2, .total_steps = 4, .min_lr = 0.01},
      s2{.peak_lr = 0.05, .warmup_steps = 0, .total_steps = 3};
  REQUIRE(counter.lrs.size() == 7);
  for (std::size_t g = 0; g < 7; ++g) CHECK(counter.lrs[g] == (g < 4 ? s1.lr(g) : s2.lr(g - 4)));
  CHECK(r.last_eval.at("stage") == 2);
  CHECK(r.last_eval.at("eval_loss") == model.value.data()[0]);

  // A callback's stop ends the run after that step.
  Quadratic m2;
  QuadraticObjective o2;
  Counter stopper;
  stopper.stop_at = 3;
  p4lm::train::Trainer t2(m2, o2, toy_options(), stopper);
  CHECK(t2.fit().stopped);
  CHECK(t2.step() == 3);
}

TEST_CASE("trainer: gradient accumulation averages the micro-batches' gradients", "[train][trainer]") {
  // Two micro-batches of targets k and k+1 per step against one step on their mean target: the same
  // quadratic gradient (w - mean), hence the same AdamW update.
  struct MeanTarget : QuadraticObjective {
    StepLoss loss(Quadratic& q, const Batch& b) {
      for (std::size_t i = 0; i < 3; ++i)
        q.grad.data()[i] += q.value.data()[i] - 0.5 * (target(2 * b.index, i) + target(2 * b.index + 1, i));
      return {0, 1};
    }
  };
  Quadratic a, b;
  QuadraticObjective micro;
  micro.micro = 2;
  MeanTarget mean;
  auto oa = toy_options();
  oa.micro_batches = 2;
  p4lm::train::Trainer ta(a, micro, oa);
  p4lm::train::Trainer tb(b, mean, toy_options());
  ta.fit();
  tb.fit();
  for (std::size_t i = 0; i < 3; ++i) CHECK(a.value.data()[i] == Approx(b.value.data()[i]).epsilon(1e-12));
}

TEST_CASE("trainer: the non-finite guard names the step and the tensor and keeps the last good checkpoint",
          "[train][trainer][guard]") {
  SECTION("NaN loss") {
    TempDir dir("guard_loss");
    Quadratic model;
    QuadraticObjective objective;
    objective.nan_loss_at = 5;
    auto o = toy_options(dir.path);
    o.checkpoint_every = 2;
    p4lm::train::Trainer trainer(model, objective, o);
    try {
      trainer.fit();
      FAIL("no error");
    } catch (const p4lm::train::NonFiniteError& e) {
      CHECK(e.step() == 6);
      CHECK(e.tensor() == "loss");
      CHECK(std::string(e.what()).find("step 6: the training loss is nan") != std::string::npos);
    }
    // The checkpoint is the one of step 4; the metrics stop at step 5.
    const auto meta = p4lm::io::SafetensorsFile::open(dir.path / "checkpoint.safetensors").metadata();
    CHECK(nlohmann::json::parse(meta.at("trainer")).at("step") == 4);
    std::size_t last = 0;
    p4lm::io::for_each_jsonl(dir.path / "metrics.jsonl",
                             [&](const nlohmann::json& j, std::size_t) { last = j.at("step"); });
    CHECK(last == 5);
  }
  SECTION("a learning rate that overflows the parameters: the parameter is named") {
    QuadraticT<float> model;
    QuadraticObjective objective;
    auto o = toy_options();
    o.phases[0].schedule.peak_lr = o.phases[0].schedule.min_lr = 1e300;  // lr × O(1) is inf in float
    p4lm::train::Trainer trainer(model, objective, o);
    try {
      trainer.fit();
      FAIL("no error");
    } catch (const p4lm::train::NonFiniteError& e) {
      CHECK(e.step() == 1);
      CHECK(e.tensor() == "w");
      CHECK(std::string(e.what()).find("step 1: parameter 'w' holds") != std::string::npos);
    }
    // An infinite learning rate is refused before anything runs.
    auto bad = toy_options();
    bad.phases[1].optimizer.lr = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH((p4lm::train::Trainer(model, objective, bad)),
                      Catch::Contains("learning rates must be finite"));
  }
  SECTION("an infinite gradient: the tensor is named, nothing is updated") {
    Quadratic model;
    QuadraticObjective objective;
    objective.inf_grad_at = 2;
    p4lm::train::Trainer trainer(model, objective, toy_options());
    try {
      trainer.fit();
      FAIL("no error");
    } catch (const p4lm::train::NonFiniteError& e) {
      CHECK(e.step() == 3);
      CHECK(e.tensor() == "w");
      CHECK(std::string(e.what()).find("the gradient of 'w' is not finite") != std::string::npos);
    }
    CHECK(p4lm::train::FiniteGuard::first_bad(model.value.view()) == std::nullopt);  // AdamW skipped it
  }
}

TEST_CASE("trainer: a language model at lr 1e9 stops with an error instead of writing a NaN model",
          "[train][trainer][guard]") {
  TempDir dir("guard_lm");
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = 32, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.d_ff = 32,
  c.max_seq = 16;
  p4lm::LlamaLM<float> lm(c);
  p4lm::Rng rng(1);
  lm.init_random(rng);
  std::vector<std::int32_t> stream(400);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::int32_t>((i * 7 + i / 3) % 32);
  p4lm::train::NextTokenOptions o{.batch = 2,
                                  .seq = 8,
                                  .steps = 200,
                                  .lr = 1e9,
                                  .min_lr = 1e9,
                                  .warmup = 0,
                                  .save_every = 1,
                                  .out = dir.path,
                                  .progress = false};
  try {
    p4lm::train::train_next_token(lm, stream, o);
    FAIL("lr 1e9 trained to the end");
  } catch (const p4lm::train::NonFiniteError& e) {
    INFO(e.what());
    CHECK(e.step() >= 1);
    CHECK(std::string(e.what()).find("step " + std::to_string(e.step())) != std::string::npos);
    // The checkpoint on disk is the last good step's and holds no NaN.
    if (e.step() > 1) {
      auto again = p4lm::load_checkpoint<p4lm::LlamaLM<float>>(dir.path / "checkpoint.safetensors");
      for (const auto& p : again.parameters())
        CHECK(p4lm::train::FiniteGuard::first_bad(p.value) == std::nullopt);
    }
  }
}

TEST_CASE("trainer: resume refuses options that change the result and accepts the others",
          "[train][trainer]") {
  TempDir dir("refuse");
  auto run = [&](auto edit) {
    Quadratic model;
    QuadraticObjective objective;
    auto o = toy_options(dir.path);
    o.checkpoint_every = 2;
    o.fingerprint = {{"lr", 0.1}, {"data", "a.txt"}};
    edit(o);
    p4lm::train::Trainer trainer(model, objective, o);
    const bool resumed = trainer.resume();
    trainer.fit();
    return std::pair{resumed, trainer.step()};
  };
  CHECK(run([](auto& o) { o.stop_after = 2; }) == std::pair{false, std::size_t{2}});
  CHECK_THROWS_WITH(run([](auto& o) { o.fingerprint["lr"] = 0.2, o.fingerprint["data"] = "b.txt"; }),
                    Catch::Contains("changes options that change the result: data (checkpoint \"a.txt\", "
                                    "this run \"b.txt\"); lr (checkpoint 0.1, this run 0.2)"));
  // Logging, evaluation and checkpoint cadence and progress are free.
  CHECK(run([](auto& o) { o.log_every = 3, o.eval_every = 1, o.progress = false, o.stop_after = 4; }) ==
        std::pair{true, std::size_t{4}});
  CHECK(run([](auto&) {}) == std::pair{true, std::size_t{7}});
}

TEST_CASE("trainer: train-lm resumes with default flags (n_kv_heads 0) and a larger --steps",
          "[train][trainer]") {
  TempDir dir("lm_resume");
  p4lm::ModelConfig c;
  c.arch = "llama", c.vocab_size = 32, c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 0;
  c.d_ff = 32, c.max_seq = 16;
  std::vector<std::int32_t> stream(300);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::int32_t>((i * 5 + i / 7) % 32);
  auto run = [&](std::size_t steps) {
    p4lm::LlamaLM<float> lm(c);
    p4lm::Rng rng(3);
    lm.init_random(rng);
    return p4lm::train::train_next_token(
        lm, stream,
        {.batch = 2, .seq = 8, .steps = steps, .save_every = 2, .out = dir.path, .progress = false});
  };
  CHECK(run(4).step == 4);
  const auto r = run(6);
  CHECK(r.resumed);
  CHECK(r.resumed_at == 4);
  CHECK(r.step == 6);
}

TEST_CASE("trainer: a run that fails before its first step leaves nothing behind", "[train][trainer]") {
  TempDir dir("nothing");
  Quadratic model;
  QuadraticObjective objective;
  objective.nan_loss_at = 0;
  auto o = toy_options(dir.path / "out");
  o.run_files = {{"config.json", "{}\n"}};
  {
    p4lm::train::Trainer trainer(model, objective, o);
    CHECK_THROWS_AS(trainer.fit(), p4lm::train::NonFiniteError);
  }
  CHECK_FALSE(fs::exists(dir.path / "out"));  // the folder it created is gone again
  // A successful run writes the run files with its first step; no lock file stays.
  objective.nan_loss_at = -1;
  {
    p4lm::train::Trainer trainer(model, objective, o);
    trainer.fit();
  }
  CHECK(files_in(dir.path / "out") == std::vector<std::string>{"checkpoint.safetensors", "config.json",
                                                               "eval_metrics.csv", "eval_metrics.jsonl",
                                                               "metrics.csv", "metrics.jsonl"});
}

TEST_CASE(
    "output lock: a second run into the same folder is refused naming the holder; stale locks are taken over",
    "[train][trainer][lock]") {
  TempDir dir("lock");
  fs::create_directories(dir.path);
  {  // re-entrant within a process
    p4lm::io::OutputLock a(dir.path);
    p4lm::io::OutputLock b(dir.path);
    CHECK(b.held());
    CHECK(p4lm::io::OutputLock::holder(dir.path).find("pid " + std::to_string(::getpid())) == 0);
  }
  CHECK_FALSE(fs::exists(dir.path / p4lm::io::OutputLock::file_name));
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // holds the lock until killed
    ::close(ready[0]);
    try {
      p4lm::io::OutputLock held(dir.path);
      (void)!::write(ready[1], "x", 1);
      for (;;) ::pause();
    } catch (...) {
      ::_exit(3);
    }
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  CHECK_THROWS_WITH(p4lm::io::OutputLock(dir.path),
                    Catch::Contains("in use by another run (pid " + std::to_string(child) + " on host"));
  // Two trainers cannot write the same folder.
  Quadratic model;
  QuadraticObjective objective;
  CHECK_THROWS_WITH((p4lm::train::Trainer(model, objective, toy_options(dir.path))),
                    Catch::Contains("in use"));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(fs::exists(dir.path / p4lm::io::OutputLock::file_name));  // stale: its holder is dead
  p4lm::io::OutputLock taken(dir.path);
  CHECK(p4lm::io::OutputLock::holder(dir.path).find("pid " + std::to_string(::getpid())) == 0);
}

TEST_CASE("trainer: built-in callbacks stop at a step, keep the evaluations, stop early",
          "[train][trainer]") {
  Quadratic model;
  QuadraticObjective objective;
  auto o = toy_options();
  o.eval_every = 1;
  p4lm::train::StopAtStep stop{5};
  p4lm::train::EvalHistory history;
  p4lm::train::Trainer trainer(model, objective, o, stop, history);
  CHECK(trainer.fit().step == 5);
  REQUIRE(history.records.size() == 5);
  CHECK(history.records[3].first == 4);
  CHECK(history.records[3].second.at("stage") == 1);
  CHECK(history.records[4].second.at("stage") == 2);
  // EarlyStop: eval_loss is w[0], which rises towards its targets; patience 2 stops after two rises.
  Quadratic m2;
  m2.value.data()[0] = -1;
  QuadraticObjective o2;
  p4lm::train::EarlyStop early{.field = "eval_loss", .patience = 2};
  p4lm::train::Trainer t2(m2, o2, o, early);
  CHECK(t2.fit().step == 3);  // evaluations 1 (best), 2 and 3 (no improvement): stop
}

namespace {
// QuadraticObjective plus an end_step hook: every odd step it reports fields (as PPO reports an
// iteration's metrics at the iteration's last step) and it counts its calls as data-order state.
struct QuadraticWithFields : QuadraticObjective {
  std::size_t calls = 0;
  template <class Q, class Info>
  std::map<std::string, double> end_step(Q&, const Info& info) {
    ++calls;
    if (info.step % 2 == 0) return {};
    return {{"seen_grad_norm", info.grad_norm}, {"calls", static_cast<double>(calls)}};
  }
  nlohmann::json state() const { return {{"calls", calls}}; }
  void load_state(const nlohmann::json& j) { calls = j.at("calls"); }
};

struct FieldsSeen {
  std::vector<std::map<std::string, double>> fields;
  template <class T, class I>
  void end_step(T&, const I& info) {
    fields.push_back(info.fields);
  }
};
}  // namespace

TEST_CASE(
    "trainer: an objective's end_step fields reach the callbacks and the step records; checkpoints "
    "anywhere",
    "[train][trainer]") {
  TempDir dir("end_step_fields");
  auto o = toy_options(dir.path);
  o.log_every = 2;
  Quadratic q;
  QuadraticWithFields objective;
  FieldsSeen seen;
  p4lm::train::Trainer trainer(q, objective, o, seen);
  trainer.fit();
  REQUIRE(seen.fields.size() == 7);
  CHECK(seen.fields[0].at("calls") == 1.0);
  CHECK(seen.fields[1].empty());
  CHECK(seen.fields[2].at("calls") == 3.0);
  std::vector<nlohmann::json> records;
  p4lm::io::for_each_jsonl(dir.path / "metrics.jsonl",
                           [&](const nlohmann::json& j, std::size_t) { records.push_back(j); });
  // Steps 2, 4 (end of phase 1), 6, 7 (end of phase 2); each holds the fields reported since the last.
  REQUIRE(records.size() == 4);
  CHECK(records[0].at("calls") == 1.0);
  CHECK(records[0].at("seen_grad_norm") != records[0].at("grad_norm"));  // step 1's norm, not step 2's
  CHECK(records[1].at("calls") == 3.0);
  CHECK(records[2].at("calls") == 5.0);
  CHECK(records[3].at("calls") == 7.0);
  CHECK(records[3].at("seen_grad_norm") == records[3].at("grad_norm"));

  // save_checkpoint(path) / resume(path): a checkpoint file outside the output folder.
  const auto file = dir.path.parent_path() / "p4lm_test_trainer_end_step_fields.safetensors";
  trainer.save_checkpoint(file);
  Quadratic q2;
  QuadraticWithFields objective2;
  p4lm::train::Trainer again(q2, objective2, toy_options());
  CHECK_FALSE(again.resume(dir.path / "nothing.safetensors"));
  REQUIRE(again.resume(file));
  CHECK(again.step() == 7);
  CHECK(objective2.calls == 7);
  CHECK(std::equal(q.value.data(), q.value.data() + 3, q2.value.data()));
  fs::remove(file);
}
