#pragma once
// The one training loop of p4lm. Every trainer (train-lm, the SFT warm start, and the reward models
// and PPO as they land) is an Objective (what a batch and its loss are) plus callbacks on this
// loop, which owns what every run needs and must get right once:
//   - the step loop over phases (a phase: steps, learning-rate schedule and optimizer options;
//     SFT has two, a fresh AdamW each), gradient accumulation over micro-batches, clipping (AdamW);
//   - periodic evaluation (Objective::evaluate) and metrics files (io/metrics.hpp), progress;
//   - checkpoint + resume: parameters, optimizer moments and step, the phase and schedule position,
//     the objective's data-order state and the result-changing options (train/checkpointing.hpp); a
//     resumed run drops the metrics records logged after its checkpoint and continues bit-identically;
//     a resume with changed result-changing options is refused with the list of them;
//   - the non-finite guard (train/finite_guard.hpp) and a lock on the output folder (io/output_lock.hpp);
//   - an objective's own per-step fields (Objective::end_step, e.g. PPO's iteration metrics) in the
//     step record and in what callbacks see;
//   - nothing that looks like a result before the first step succeeded (metrics files and
//     TrainerOptions::run_files appear with the first step).
//
//   p4lm::train::TrainerOptions o{.out = "runs/lm", .checkpoint_every = 100};
//   o.phases = {{.steps = 1000, .schedule = {.peak_lr = 3e-4, .warmup_steps = 50, .total_steps = 1000},
//                .optimizer = {.lr = 3e-4, .weight_decay = 0.1}}};
//   p4lm::train::NextTokenObjective<p4lm::LlamaLM<>> objective(tokens, 8, 64);
//   p4lm::train::Trainer trainer(model, objective, o);   // + callbacks..., see train/callbacks.hpp
//   trainer.resume();                                    // if out/checkpoint.safetensors exists
//   auto result = trainer.fit();
//
// Step g (0-based) of phase p: model.zero_grad(); for each micro-batch k, loss(model, batch(g, k));
// gradients scaled by 1/micro_batches when > 1; optimizer step at phase.schedule.lr(g - start of p).
// Docs: docs/architecture.md "Training" (concepts, checklist for a new objective).
//
// Data parallel (docs/distributed.md): with TrainerOptions::comm of N ranks (by default dist::world(),
// MPI_COMM_WORLD under mpirun), rank r reads batch(g·N + r, k) at step g (dist/shard.hpp: the
// single-process order split by rank), the gradients are averaged over the ranks before clipping and
// AdamW (weighted by each rank's StepLoss::weight where the objective gives one), and the replicas
// stay identical (rank 0's parameters, frozen ones included, are broadcast when fit() starts). Rank 0
// alone evaluates, writes metrics, run files and checkpoints, shows progress and holds the lock; the
// loss, evaluation records and callbacks' stop decisions are shared so every rank takes the same
// path. Fingerprint fields named in per_rank_fingerprint count the global batch, so a run resumes on
// any number of ranks that keeps it.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/gradient_reducer.hpp"
#include "p4lm/dist/shard.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/metrics.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/nn/schedule.hpp"
#include "p4lm/train/callbacks.hpp"
#include "p4lm/train/checkpointing.hpp"
#include "p4lm/train/concepts.hpp"
#include "p4lm/train/finite_guard.hpp"

namespace p4lm::train {

// A stretch of training with one optimizer configuration and one schedule. The optimizer is built
// afresh (zero moments) at the start of each phase; `fields` are added to every metrics record of
// the phase (SFT: {"stage", 1}).
struct Phase {
  std::size_t steps = 0;
  WarmupCosine schedule{};  // lr(step within the phase)
  AdamWOptions optimizer{};
  std::map<std::string, double> fields{};
};

struct TrainerOptions {
  std::vector<Phase> phases;
  std::size_t micro_batches = 1;              // gradient accumulation: batches per optimizer step
  std::filesystem::path out;                  // empty: no files (no metrics, checkpoints or lock)
  std::string train_metrics = "metrics";      // out/<name>.jsonl and .csv, a record per log_every steps
  std::string eval_metrics = "eval_metrics";  // out/<name>.jsonl and .csv, a record per evaluation
  std::string checkpoint = "checkpoint.safetensors";
  std::size_t log_every = 1;
  std::size_t eval_every = 0;        // 0: evaluate only at the end of each phase
  std::size_t checkpoint_every = 0;  // 0: only the final checkpoint (if final_checkpoint)
  bool final_checkpoint = true;      // checkpoint where fit() stops
  std::size_t stop_after = 0;        // stop at this global step (0: run to the end); resumable
  bool progress = true;
  std::string label = "train";
  // Options that change the result, saved in checkpoints; resume() refuses a run whose values differ.
  nlohmann::json fingerprint = nlohmann::json::object();
  // Files (name -> content) written into out once the first step has succeeded (config.json, ...).
  std::map<std::string, std::string> run_files{};
  bool check_parameters = true;  // the guard also scans the parameters after each update
  // The ranks of a data-parallel run (one process without MPI); see the header comment.
  dist::Communicator comm = dist::world();
  // Fingerprint fields that are per-rank batch sizes: checkpoints hold them × ranks (the global batch).
  std::vector<std::string> per_rank_fingerprint = {"batch", "batch_size"};
};

struct FitResult {
  std::size_t step = 0;                       // global step reached
  std::map<std::string, double> last_eval{};  // the last evaluation record ({} if none)
  bool stopped = false;                       // a callback or stop_after ended it before the last phase did
  // Data parallel: wall time of this fit()'s steps and of the reductions in them (all-reduces,
  // waiting for the slowest rank included); 0 on one process.
  double step_seconds = 0, reduce_seconds = 0;
};

// An objective that shards its data itself under data parallelism (PPO splitting its rollouts, an
// objective whose batch depends on the step beyond the data position) defines
// batch(step, micro, const dist::Shard&): the Trainer then passes the global step and this rank's
// shard instead of asking for batch(shard.batch_step(step), micro).
template <class O>
concept ObjectiveShardsBatch = requires(O& o, std::size_t step, const dist::Shard& shard) {
  o.batch(step, step, shard);
};

// A model whose parameters() lists only what the current phase trains (PitchModel after set_stage)
// defines all_parameters(): every parameter, frozen ones included. Data parallel, the Trainer
// broadcasts those from rank 0, so the replicas also agree on what the forward pass reads frozen.
template <class M>
concept ModelListsAllParameters = requires(M& m) {
  { m.all_parameters() } -> std::convertible_to<std::span<Parameter<typename M::value_type>>>;
};

// An objective that reduces statistics of its own over the ranks (PPO's advantage whitening and
// metrics, SFT's checkpointed global batch) defines set_communicator(const dist::Communicator&): the
// Trainer hands it TrainerOptions::comm when it is built, before resume() and fit().
template <class O>
concept ObjectiveTakesCommunicator = requires(O& o, const dist::Communicator& c) {
  o.set_communicator(c);
};

template <class Model, class Objective, class Optimizer = AdamW<typename Model::value_type>,
          class... Callbacks>
class Trainer {
  static_assert(TrainableModel<Model>,
                "Trainer: the Model needs `value_type`, `parameters()` returning a span of "
                "p4lm::Parameter<value_type> and `zero_grad()` (see train/concepts.hpp)");
  static_assert(HasBatch<Objective>,
                "Trainer: the Objective needs `batch(std::size_t step, std::size_t micro)` returning the "
                "data of that step (see train/concepts.hpp)");
  static_assert(HasLoss<Objective, Model>,
                "Trainer: the Objective needs `loss(Model&, const Batch&)` doing forward and backward and "
                "returning p4lm::train::StepLoss (see train/concepts.hpp)");
  static_assert(TrainerOptimizer<Optimizer, typename Model::value_type>,
                "Trainer: the Optimizer needs AdamW's interface: step(params, lr) -> grad norm, steps(), "
                "set_steps(), m(i, shape), v(i, shape), options() (see nn/adamw.hpp)");

 public:
  using T = typename Model::value_type;
  // What end_step callbacks see after each optimizer step.
  struct StepInfo {
    std::size_t step;  // global step just completed (1-based)
    std::size_t phase;
    double loss, grad_norm, lr;
    std::size_t tokens;
    std::map<std::string, double> fields{};  // what Objective::end_step returned for this step
  };

  Trainer(Model& model, Objective& objective, TrainerOptions options, Callbacks&... callbacks)
      : model_(&model), objective_(&objective), o_(std::move(options)), callbacks_(callbacks...) {
    static_assert((Callback<Callbacks, Trainer> && ...),
                  "Trainer: a callback defines none of the hooks begin_run, end_run, end_step, end_eval, "
                  "begin_phase, checkpoint_saved (see train/callbacks.hpp)");
    if (o_.micro_batches == 0) fail<InvalidArgument>("Trainer: micro_batches must be >= 1");
    for (const auto& ph : o_.phases) {
      const double lrs[] = {ph.schedule.peak_lr, ph.schedule.min_lr, ph.optimizer.lr};
      for (double lr : lrs)
        if (!std::isfinite(lr) || lr < 0)
          fail<InvalidArgument>("Trainer: learning rates must be finite and >= 0, got ", lr);
    }
    if constexpr (ObjectiveTakesCommunicator<Objective>) objective_->set_communicator(o_.comm);
    if (writes_files()) {
      lock_ = io::OutputLock(o_.out);
      remove_stale_temporaries();
    }
  }

  Model& model() noexcept { return *model_; }
  Objective& objective() noexcept { return *objective_; }
  Optimizer& optimizer() noexcept { return opt_; }
  const TrainerOptions& options() const noexcept { return o_; }
  std::size_t step() const noexcept { return step_; }
  std::size_t total_steps() const noexcept {
    std::size_t n = 0;
    for (const auto& p : o_.phases) n += p.steps;
    return n;
  }
  bool done() const noexcept { return step_ >= total_steps(); }
  std::filesystem::path checkpoint_path() const { return o_.out / o_.checkpoint; }

  // Index of the phase that global step g (0-based) belongs to; the last phase for g past the end.
  std::size_t phase_of(std::size_t g) const {
    std::size_t start = 0;
    for (std::size_t p = 0; p < o_.phases.size(); ++p) {
      if (g < start + o_.phases[p].steps) return p;
      start += o_.phases[p].steps;
    }
    return o_.phases.empty() ? 0 : o_.phases.size() - 1;
  }
  // The phase of the step before g (the one a checkpoint at g was written in; phase 0 at g = 0).
  std::size_t resume_phase(std::size_t g) const { return phase_of(g == 0 ? 0 : g - 1); }
  std::size_t phase_start(std::size_t p) const {
    std::size_t start = 0;
    for (std::size_t k = 0; k < p; ++k) start += o_.phases[k].steps;
    return start;
  }

  // Loads out/<checkpoint> if it exists: parameters, optimizer state, step, objective state. Refuses
  // (InvalidArgument listing them) a run whose fingerprint options differ from the checkpoint's.
  bool resume() { return !o_.out.empty() && resume(checkpoint_path()); }
  // The same from a checkpoint file anywhere (false if it does not exist). Data parallel: rank 0
  // reads it and sends the state to the others (the file need not exist on their hosts).
  bool resume(const std::filesystem::path& file) {
    return o_.comm.distributed() ? resume_shared(file) : resume_here(file);
  }

  // The fingerprint as checkpoints hold it: per_rank_fingerprint fields × ranks.
  nlohmann::json fingerprint() const {
    nlohmann::json f = o_.fingerprint;
    for (const auto& key : o_.per_rank_fingerprint) {
      if (!f.is_object() || !f.contains(key)) continue;
      if (f[key].is_number_unsigned())
        f[key] = f[key].template get<std::uint64_t>() * static_cast<std::uint64_t>(o_.comm.size());
      else if (f[key].is_number_integer())
        f[key] = f[key].template get<std::int64_t>() * static_cast<std::int64_t>(o_.comm.size());
    }
    return f;
  }

 private:
  bool resume_here(const std::filesystem::path& file) {
    if (!std::filesystem::exists(file)) return false;
    const auto st = io::SafetensorsFile::open(file);
    const auto it = st.metadata().find(trainer_metadata_key);
    if (it == st.metadata().end())
      throw ParseError(file, 0, "__metadata__",
                       "no 'trainer' entry: not a training checkpoint of this p4lm version (start over in "
                       "another output folder, or without resuming)");
    const auto saved = nlohmann::json::parse(it->second);
    const auto changed = changed_options(saved.value("options", nlohmann::json::object()), fingerprint());
    if (!changed.empty()) {
      std::string list;
      for (const auto& c : changed) list += (list.empty() ? "" : "; ") + c;
      fail<InvalidArgument>(file.string(), ": this run changes options that change the result: ", list,
                            ". Resume with the checkpoint's values, or start over (another output "
                            "folder, or without resuming)");
    }
    const std::size_t step = saved.at("step");
    // The phase the checkpoint's last step belongs to: its parameter list and moments are the file's.
    // A checkpoint that ends a phase resumes into it, and fit() then starts the next phase afresh
    // (its parameters, a new optimizer), as the uninterrupted run did at that step.
    begin_phase(resume_phase(step));
    load_training_checkpoint(file, *model_, &opt_);
    if constexpr (ObjectiveHasState<Objective>)
      objective_->load_state(saved.value("objective", nlohmann::json()));
    // The loss logged next averages over the whole log interval, steps before the checkpoint included.
    log_loss_sum_ = saved.value("log_loss_sum", 0.0);
    log_loss_n_ = saved.value("log_loss_count", std::size_t{0});
    step_ = step;
    return true;
  }

  // Rank 0 resumes from the file, then every rank takes its state: step, log sums, the objective's
  // state, parameters, optimizer moments and count. An error on rank 0 is raised on every rank.
  bool resume_shared(const std::filesystem::path& file) {
    const auto& c = o_.comm;
    int status = 0;  // 0 nothing to resume, 1 resumed, 2 failed
    std::string error;
    std::exception_ptr failure;
    if (c.is_root()) {
      try {
        status = resume_here(file) ? 1 : 0;
      } catch (const std::exception& e) {
        status = 2, error = e.what(), failure = std::current_exception();
      }
    }
    status = c.broadcast_value(status);
    if (status == 2) {
      c.broadcast(error);
      if (failure) std::rethrow_exception(failure);
      fail<InvalidArgument>("rank ", c.rank(), ": rank 0 could not resume: ", error);
    }
    if (status == 0) return false;
    std::string state;
    if (c.is_root()) {
      nlohmann::json j{{"step", step_}, {"log_loss_sum", log_loss_sum_}, {"log_loss_count", log_loss_n_}};
      if constexpr (ObjectiveHasState<Objective>) j["objective"] = objective_->state();
      state = j.dump();
    }
    c.broadcast(state);
    if (!c.is_root()) {
      const auto j = nlohmann::json::parse(state);
      step_ = j.at("step");
      begin_phase(resume_phase(step_));
      if constexpr (ObjectiveHasState<Objective>)
        objective_->load_state(j.value("objective", nlohmann::json()));
      log_loss_sum_ = j.at("log_loss_sum"), log_loss_n_ = j.at("log_loss_count");
    }
    broadcast_model();
    auto params = model_->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!opt_.has_state(i)) continue;
      c.broadcast(opt_.m(i, params[i].value.shape()).span());
      c.broadcast(opt_.v(i, params[i].value.shape()).span());
    }
    opt_.set_steps(c.broadcast_value(static_cast<std::int64_t>(opt_.steps())));
    return true;
  }

 public:
  // Trains from the current step to the end of the last phase (or stop_after, or a callback's stop).
  FitResult fit() {
    FitResult result;
    if (o_.phases.empty()) fail<InvalidArgument>("Trainer: no phases to train");
    step_seconds_ = reduce_seconds_ = 0;
    if (o_.comm.distributed()) broadcast_model();  // identical replicas, whatever each rank's init did
    if (writes_files())  // records after the checkpoint's step were logged by a run that died
      for (const auto* name : {&o_.train_metrics, &o_.eval_metrics})
        MetricsSink::drop_after(static_cast<long>(step_), o_.out / (*name + ".jsonl"),
                                o_.out / (*name + ".csv"));
    std::size_t end = o_.stop_after ? std::min(o_.stop_after, total_steps()) : total_steps();
    bool stop = agree(call_all([&](auto& c) { return hooks::call_begin_run(c, *this); }));
    if (stop) end = step_;
    std::optional<Progress> bar;
    if (o_.progress && step_ < end && o_.comm.is_root()) {
      bar.emplace(o_.label, end, "steps");
      bar->advance(step_);
    }
    bool first = true;
    while (step_ < end) {
      const std::size_t p = phase_of(step_);
      if (p != phase_ready_) {
        const bool switching = phase_ready_ != std::numeric_limits<std::size_t>::max();
        begin_phase(p);
        // A phase may list parameters the last one did not (SFT's stage 2), which the broadcast
        // when fit() started missed unless the model lists them all: every rank takes rank 0's.
        if (switching && o_.comm.distributed() && !ModelListsAllParameters<Model>) broadcast_model();
      }
      const StepInfo info = train_step(p);
      if (first) write_run_files(), first = false;
      log_loss_sum_ += info.loss, ++log_loss_n_;
      for (const auto& [k, v] : info.fields) log_fields_[k] = v;
      if (bar) bar->advance(1, phase_note(p) + "loss " + fmt(info.loss));
      stop = agree(call_all([&](auto& c) { return hooks::call_end_step(c, *this, info); }));
      if (stop) end = step_;
      const bool phase_end = step_ == phase_start(p) + o_.phases[p].steps;
      if (writes_files() && (step_ % std::max<std::size_t>(o_.log_every, 1) == 0 || phase_end)) {
        std::map<std::string, double> r = o_.phases[p].fields;
        for (const auto& [k, v] : log_fields_) r[k] = v;
        log_fields_.clear();
        r["loss"] = log_loss_sum_ / static_cast<double>(log_loss_n_);
        r["lr"] = info.lr;
        r["grad_norm"] = info.grad_norm;
        sink(train_log_, o_.train_metrics).record(static_cast<long>(step_), r);
        log_loss_sum_ = 0, log_loss_n_ = 0;
      }
      if (phase_end || (o_.eval_every && step_ % o_.eval_every == 0)) {
        if (auto r = evaluate_on_root(p); !r.empty()) {
          result.last_eval = r;
          if (writes_files()) sink(eval_log_, o_.eval_metrics).record(static_cast<long>(step_), r);
          if (bar && r.contains("eval_loss"))
            bar->set_note(phase_note(p) + "held-out " + fmt(r.at("eval_loss")));
          if (agree(
                  call_all([&](auto& c) { return hooks::call_end_eval(c, *this, step_, std::as_const(r)); })))
            end = step_;
        }
      }
      if (writes_files() && ((o_.checkpoint_every && step_ % o_.checkpoint_every == 0) ||
                             (step_ == end && o_.final_checkpoint)))
        save_checkpoint();
    }
    if (bar) bar->finish();
    call_all([&](auto& c) { return hooks::call_end_run(c, *this); });
    result.step_seconds = step_seconds_, result.reduce_seconds = reduce_seconds_;
    if (o_.comm.distributed() && o_.comm.is_root() && o_.progress && step_seconds_ > 0) {
      const auto params = model_->parameters();
      const std::size_t n =
          dist::GradientReducer<T>::reduced_size(std::span<const Parameter<T>>(params.data(), params.size()));
      std::cerr << o_.label << ": " << o_.comm.size() << " ranks, " << fmt(1e-6 * double(n * sizeof(T)))
                << " MB of gradients all-reduced a step; the reductions took " << fmt(reduce_seconds_)
                << " s of " << fmt(step_seconds_) << " s of steps ("
                << fmt(100 * reduce_seconds_ / step_seconds_) << "%)\n";
    }
    result.step = step_;
    result.stopped = step_ < total_steps();
    return result;
  }

  // One evaluation record of the current model with the phase's fields ({} if the objective has no
  // evaluation or nothing to evaluate).
  std::map<std::string, double> evaluate(std::size_t phase) {
    if constexpr (ObjectiveEvaluates<Objective, Model>) {
      auto r = objective_->evaluate(*model_);
      if (r.empty()) return r;
      for (const auto& [k, v] : o_.phases.at(phase).fields) r.emplace(k, v);
      return r;
    } else {
      return {};
    }
  }

  void save_checkpoint() { save_checkpoint(checkpoint_path()); }
  // The same checkpoint written to `file` (resume(file) reads it).
  void save_checkpoint(const std::filesystem::path& file) {
    const std::size_t p = resume_phase(step_);
    nlohmann::json t{{"step", step_},
                     {"phase", p},
                     {"phase_step", step_ - phase_start(p)},
                     {"options", fingerprint()},
                     {"log_loss_sum", log_loss_sum_},
                     {"log_loss_count", log_loss_n_}};
    const auto& s = o_.phases.at(p).schedule;
    t["schedule"] = {{"peak_lr", s.peak_lr},
                     {"warmup_steps", s.warmup_steps},
                     {"total_steps", s.total_steps},
                     {"min_lr", s.min_lr}};
    if constexpr (ObjectiveHasState<Objective>) t["objective"] = objective_->state();
    if (o_.comm.distributed()) t["ranks"] = o_.comm.size();
    save_training_checkpoint(file, *model_, &opt_, t);
    call_all([&](auto& c) { return hooks::call_checkpoint_saved(c, *this, file); });
  }

 private:
  // Every rank takes rank 0's parameters (all of them, frozen included, where the model lists them).
  void broadcast_model() {
    if constexpr (ModelListsAllParameters<Model>) {
      dist::broadcast_parameters<T>(o_.comm, model_->all_parameters());
    } else {
      auto params = model_->parameters();
      dist::broadcast_parameters<T>(o_.comm, std::span<Parameter<T>>(params.data(), params.size()));
    }
  }

  // Rank 0 writes the run's files (one process: that process); the others compute only.
  bool writes_files() const noexcept { return !o_.out.empty() && o_.comm.is_root(); }

  // A stop decision every rank shares (any rank's callback may stop the run).
  bool agree(bool stop) const { return o_.comm.distributed() ? o_.comm.max(int(stop)) != 0 : stop; }

  // Data parallel: rank 0 evaluates and sends the record to the others.
  std::map<std::string, double> evaluate_on_root(std::size_t phase) {
    if (!o_.comm.distributed()) return evaluate(phase);
    std::map<std::string, double> r;
    std::string keys;  // one per line; values travel as bits (NaN included)
    std::vector<double> values;
    if (o_.comm.is_root())
      for (const auto& [k, v] : r = evaluate(phase)) keys += k + '\n', values.push_back(v);
    o_.comm.broadcast(keys);
    values.resize(static_cast<std::size_t>(std::count(keys.begin(), keys.end(), '\n')));
    o_.comm.broadcast(std::span<double>(values));
    if (o_.comm.is_root()) return r;
    std::size_t at = 0;
    for (const double v : values) {
      const std::size_t end = keys.find('\n', at);
      r[keys.substr(at, end - at)] = v, at = end + 1;
    }
    return r;
  }

  static std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }
  std::string phase_note(std::size_t p) const {
    return o_.phases.size() > 1 ? "phase " + std::to_string(p + 1) + " " : "";
  }

  template <class F>
  bool call_all(F&& f) {
    return std::apply([&](auto&... c) { return (false | ... | f(c)); }, callbacks_);
  }

  void begin_phase(std::size_t p) {
    if constexpr (ObjectiveBeginsPhase<Objective, Model>) objective_->begin_phase(*model_, p);
    const auto params = model_->parameters();
    opt_ = Optimizer(std::span<const Parameter<T>>(params.data(), params.size()), o_.phases.at(p).optimizer);
    if constexpr (ObjectiveConfiguresOptimizer<Objective, Optimizer>)
      objective_->configure_optimizer(opt_, p);
    phase_ready_ = p;
    call_all([&](auto& c) { return hooks::call_begin_phase(c, *this, p); });
  }

  StepInfo train_step(std::size_t p) {
    using Clock = std::chrono::steady_clock;
    const auto started = Clock::now();
    model_->zero_grad();
    double loss = 0, weight = 0;
    std::size_t tokens = 0;
    for (std::size_t k = 0; k < o_.micro_batches; ++k) {
      const StepLoss l = objective_->loss(*model_, batch(k));
      loss += l.loss, tokens += l.tokens, weight += l.weight;
    }
    const std::size_t at = step_ + 1;  // the step being made, as the guard's messages count
    auto params = model_->parameters();
    if (o_.micro_batches > 1) {
      loss /= static_cast<double>(o_.micro_batches);
      const T scale = T(1) / static_cast<T>(o_.micro_batches);
      for (auto& prm : params)
        if (prm.trainable)
          for (auto& g : prm.grad.span()) g *= scale;
    }
    if (o_.comm.distributed()) {  // the mean over the ranks, before clipping and AdamW
      const auto reducing = Clock::now();
      double shared[4] = {loss, loss * static_cast<double>(tokens), static_cast<double>(tokens), weight};
      o_.comm.all_reduce_sum(std::span<double>(shared));
      tokens = static_cast<std::size_t>(shared[2]);
      if (shared[3] > 0) {  // StepLoss::weight: this rank's share of the sum (exact for one micro-batch)
        loss = shared[2] > 0 ? shared[1] / shared[2] : shared[0] / o_.comm.size();
        const T scale = static_cast<T>(weight * o_.comm.size() / shared[3]);
        if (scale != T(1))
          for (auto& prm : params)
            if (prm.trainable)
              for (auto& g : prm.grad.span()) g *= scale;
      } else {
        loss = shared[0] / o_.comm.size();
      }
      reducer_.average(std::span<Parameter<T>>(params.data(), params.size()));
      reduce_seconds_ += std::chrono::duration<double>(Clock::now() - reducing).count();
    }
    FiniteGuard::loss(at, loss);
    const double lr = o_.phases[p].schedule.lr(step_ - phase_start(p));
    const double norm = opt_.step(params, lr);
    const std::span<const Parameter<T>> cparams(params.data(), params.size());
    FiniteGuard::gradients<T>(at, norm, cparams);
    if (o_.check_parameters) FiniteGuard::parameters<T>(at, cparams);
    ++step_;
    StepInfo info{step_, p, loss, norm, lr, tokens};
    if constexpr (ObjectiveEndsStep<Objective, Model, StepInfo>) {
      using R = decltype(objective_->end_step(*model_, std::as_const(info)));
      if constexpr (std::is_convertible_v<R, std::map<std::string, double>>)
        info.fields = objective_->end_step(*model_, std::as_const(info));
      else
        objective_->end_step(*model_, std::as_const(info));
    }
    if (o_.comm.distributed()) step_seconds_ += std::chrono::duration<double>(Clock::now() - started).count();
    return info;
  }

  // Micro-batch k of the current step on this rank (the single-process order split by rank).
  decltype(auto) batch(std::size_t k) {
    if constexpr (ObjectiveShardsBatch<Objective>)
      return objective_->batch(step_, k, std::as_const(shard_));
    else
      return objective_->batch(shard_.batch_step(step_), k);
  }

  MetricsSink& sink(std::optional<MetricsSink>& s, const std::string& name) {
    if (!s) s.emplace(o_.out / (name + ".jsonl"), o_.out / (name + ".csv"));
    return *s;
  }

  void write_run_files() {
    if (!writes_files()) return;
    for (const auto& [name, content] : o_.run_files) io::write_file_atomically(o_.out / name, content);
  }

  // Temporary files of atomic writes killed half-way (name.tmp.<n>); safe to remove under the lock.
  void remove_stale_temporaries() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(o_.out, ec))
      if (e.is_regular_file(ec) && e.path().filename().string().find(".tmp.") != std::string::npos)
        std::filesystem::remove(e.path(), ec);
  }

  Model* model_;
  Objective* objective_;
  TrainerOptions o_;
  std::tuple<Callbacks&...> callbacks_;
  io::OutputLock lock_;
  dist::Shard shard_ = dist::Shard::of(o_.comm);
  dist::GradientReducer<T> reducer_{o_.comm};
  Optimizer opt_;
  std::size_t step_ = 0;
  double log_loss_sum_ = 0;  // losses of the steps since the last train-metrics record
  std::size_t log_loss_n_ = 0;
  std::map<std::string, double> log_fields_;  // the objective's fields since then (latest value each)
  std::size_t phase_ready_ = std::numeric_limits<std::size_t>::max();
  double step_seconds_ = 0, reduce_seconds_ = 0;  // data parallel: this fit()'s steps and reductions
  std::optional<MetricsSink> train_log_, eval_log_;
};

template <class Model, class Objective, class... Callbacks>
Trainer(Model&, Objective&, TrainerOptions, Callbacks&...)
    -> Trainer<Model, Objective, AdamW<typename Model::value_type>, Callbacks...>;

}  // namespace p4lm::train
