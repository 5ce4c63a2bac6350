#pragma once
// What the shared Trainer (train/trainer.hpp) asks of the things it is given, as C++20 concepts. The
// Trainer checks each with a static_assert whose message says in plain words what is missing, so a
// user's type that does not fit fails with one readable line instead of a template backtrace.
//
// A Model has named parameters and can clear their gradients:
//   using value_type = float;                        // element type of its parameters
//   std::span<Parameter<value_type>> parameters();   // names, values, gradients, trainable flags
//   void zero_grad();
// CausalLM, CFAdapter and PitchModel (an LM and its adapter as one list) are Models.
//
// An Objective turns the step number into a batch and a batch into a loss with gradients:
//   Batch batch(std::size_t step, std::size_t micro);  // data order: a pure function of the step
//   StepLoss loss(Model&, const Batch&);               // forward + backward (gradients accumulate)
// and may define (the Trainer calls only what exists):
//   std::map<std::string, double> evaluate(Model&);    // one held-out record ({}: nothing to record)
//   void begin_phase(Model&, std::size_t phase);       // e.g. freeze/unfreeze for a stage
//   void configure_optimizer(Optimizer&, std::size_t phase);   // parameter groups
//   nlohmann::json state() const; void load_state(const nlohmann::json&);   // data-order state saved in
//                                                      // checkpoints (beyond the step number)
//   std::map<std::string, double> end_step(Model&, const StepInfo&);   // after each optimizer step
//                                                      // (its grad norm, ...): fields added to the step's
//                                                      // metrics record and StepInfo::fields (or void)
// An objective whose batches are not a pure function of the step (PPO: a rollout buffer, a cursor)
// keeps what it needs to continue in state().
//
// A Callback defines any of these hooks; a hook returning bool true stops the run (after the
// step's logging, evaluation and checkpoint):
//   begin_run(trainer)  end_step(trainer, const StepInfo&)  end_eval(trainer, step, record)
//   begin_phase(trainer, phase)  checkpoint_saved(trainer, path)  end_run(trainer)

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "p4lm/nn/parameter.hpp"

namespace p4lm::train {

// What Objective::loss returns for one (micro-)batch: the mean loss (what the curves show) and the
// number of tokens (or examples) it averaged over.
struct StepLoss {
  double loss = 0;
  std::size_t tokens = 0;
  // Data parallel: what the gradient is a mean over (tokens, or SFT's link-weighted token sum) when
  // that differs between the ranks' batches; 0 when every rank's batch counts the same. With it the
  // Trainer weighs each rank's gradient by its share of the sum over the ranks (and the loss by its
  // share of the tokens), so N ranks take the step of one process on all their data.
  double weight = 0;
};

template <class M>
concept TrainableModel = requires(M& m) {
  typename M::value_type;
  { m.parameters() } -> std::convertible_to<std::span<Parameter<typename M::value_type>>>;
  m.zero_grad();
};

template <class O>
concept HasBatch = requires(O& o, std::size_t step) {
  o.batch(step, step);
};

template <class O, class M>
concept HasLoss = HasBatch<O> && requires(O& o, M& m, std::size_t step) {
  { o.loss(m, o.batch(step, step)) } -> std::convertible_to<StepLoss>;
};

template <class O, class M>
concept Objective = TrainableModel<M> && HasLoss<O, M>;

// Optional objective hooks.
template <class O, class M>
concept ObjectiveEvaluates = requires(O& o, M& m) {
  { o.evaluate(m) } -> std::convertible_to<std::map<std::string, double>>;
};
template <class O, class M>
concept ObjectiveBeginsPhase = requires(O& o, M& m, std::size_t p) {
  o.begin_phase(m, p);
};
template <class O, class Opt>
concept ObjectiveConfiguresOptimizer = requires(O& o, Opt& opt, std::size_t p) {
  o.configure_optimizer(opt, p);
};
template <class O, class M, class Info>
concept ObjectiveEndsStep = requires(O& o, M& m, const Info& info) {
  o.end_step(m, info);
};
template <class O>
concept ObjectiveHasState = requires(O& o, const O& c, const nlohmann::json& j) {
  { c.state() } -> std::convertible_to<nlohmann::json>;
  o.load_state(j);
};

// The optimizer the Trainer steps and checkpoints: AdamW's interface (nn/adamw.hpp).
template <class Opt, class T>
concept TrainerOptimizer = requires(Opt& o, std::span<Parameter<T>> params, double lr, std::size_t i) {
  { o.step(params, lr) } -> std::convertible_to<double>;
  { o.steps() } -> std::convertible_to<std::int64_t>;
  o.set_steps(std::int64_t{});
  { o.has_state(i) } -> std::convertible_to<bool>;
  o.m(i, Shape{});
  o.v(i, Shape{});
  o.options();
};

// A hook of a callback is any of the names above; a callback with none is almost surely a mistake.
template <class C, class Tr>
concept Callback = requires(C& c, Tr& t) {
  c.begin_run(t);
}
|| requires(C& c, Tr& t) {
  c.end_run(t);
}
|| requires(C& c, Tr& t, const typename Tr::StepInfo& s) {
  c.end_step(t, s);
}
|| requires(C& c, Tr& t, std::size_t step, const std::map<std::string, double>& r) {
  c.end_eval(t, step, r);
}
|| requires(C& c, Tr& t, std::size_t p) {
  c.begin_phase(t, p);
}
|| requires(C& c, Tr& t, const std::filesystem::path& p) {
  c.checkpoint_saved(t, p);
};

}  // namespace p4lm::train
