#pragma once
// Trainer callbacks without virtual functions (the ensmallen way): a callback is any object; the
// Trainer calls only the hooks it defines, and a hook that returns bool true stops the run after
// the current step's logging, evaluation and checkpoint (train/concepts.hpp lists the hooks).
//
//   p4lm::train::StopAtStep stop{100};                  // a time-boxed run; its checkpoint resumes it
//   p4lm::train::EvalHistory history;                   // every evaluation record, in memory
//   p4lm::train::Trainer trainer(model, objective, options, stop, history);
//
// Built-ins here are small on purpose; metrics files, progress and checkpoints belong to the
// Trainer itself because every run needs them.

#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace p4lm::train {

namespace hooks {
// call_<hook>(c, args...) calls c.<hook>(args...) if c has it; true when it returned true (stop).
#define P4LM_TRAINER_HOOK(hook)                                  \
  template <class C, class... A>                                 \
  bool call_##hook(C& c, A&&... a) {                             \
    if constexpr (requires { c.hook(std::forward<A>(a)...); }) { \
      using R = decltype(c.hook(std::forward<A>(a)...));         \
      if constexpr (std::is_convertible_v<R, bool>) {            \
        return static_cast<bool>(c.hook(std::forward<A>(a)...)); \
      } else {                                                   \
        c.hook(std::forward<A>(a)...);                           \
        return false;                                            \
      }                                                          \
    } else {                                                     \
      return false;                                              \
    }                                                            \
  }
P4LM_TRAINER_HOOK(begin_run)
P4LM_TRAINER_HOOK(end_run)
P4LM_TRAINER_HOOK(end_step)
P4LM_TRAINER_HOOK(end_eval)
P4LM_TRAINER_HOOK(begin_phase)
P4LM_TRAINER_HOOK(checkpoint_saved)
#undef P4LM_TRAINER_HOOK
}  // namespace hooks

// Stops once the global step reaches `step` (0: never). The Trainer checkpoints where it stops, so
// rerunning without the callback continues bit-identically.
struct StopAtStep {
  std::size_t step = 0;
  template <class Trainer, class Info>
  bool end_step(Trainer&, const Info& info) const {
    return step != 0 && info.step >= step;
  }
};

// Keeps every evaluation record of this process's run (step, fields).
struct EvalHistory {
  std::vector<std::pair<std::size_t, std::map<std::string, double>>> records;
  template <class Trainer>
  void end_eval(Trainer&, std::size_t step, const std::map<std::string, double>& record) {
    records.emplace_back(step, record);
  }
};

// Stops when an evaluation field has not improved (decreased) for `patience` evaluations.
struct EarlyStop {
  std::string field = "eval_loss";
  std::size_t patience = 3;
  double best = 1e300;
  std::size_t bad = 0;
  template <class Trainer>
  bool end_eval(Trainer&, std::size_t, const std::map<std::string, double>& record) {
    const auto it = record.find(field);
    if (it == record.end()) return false;
    if (it->second < best) {
      best = it->second, bad = 0;
      return false;
    }
    return ++bad >= patience;
  }
};

}  // namespace p4lm::train
