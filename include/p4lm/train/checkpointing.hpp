#pragma once
// The Trainer's checkpoint: one atomic safetensors file with everything a resumed run needs to
// continue bit-identically: the model's parameters (under their names, bit-exact), the optimizer's
// moments (optimizer.m/<name>, optimizer.v/<name>, for the parameters it holds moments for) and step
// count, and a "trainer" metadata entry with the global step, the phase and its schedule position,
// the objective's data-order state and the options that change the result (the run's fingerprint).
// The layout is model/checkpoint.hpp's, so a model with a config() is also loadable on its own
// (load_any_lm, `--model`).
//
//   save_training_checkpoint(path, model, &optimizer, trainer_json);
//   nlohmann::json t = load_training_checkpoint(path, model, &optimizer);   // t["step"], ...
//   auto changed = changed_options(t["options"], fingerprint);              // {"lr: 0.001 -> 0.002"}

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/nn/parameter.hpp"

namespace p4lm::train {

inline constexpr const char* trainer_metadata_key = "trainer";

template <class Model, class Opt>
void save_training_checkpoint(const std::filesystem::path& path, Model& model, Opt* optimizer,
                              const nlohmann::json& trainer,
                              const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::string> meta = extra;
  meta[trainer_metadata_key] = trainer.dump();
  write_checkpoint(path, model, optimizer, meta);
}

// Loads parameters and (if given) the optimizer's moments and step count in place: the optimizer
// keeps its configuration (options, parameter groups, which parameters have moments), which the run
// sets, not the file. Moments in the file for parameters the optimizer holds none for (frozen ones,
// written by versions that kept moments for every parameter) are ignored; a missing one is an error
// naming the file and the tensor. Returns the "trainer" metadata.
template <class Model, class Opt>
nlohmann::json load_training_checkpoint(const std::filesystem::path& path, Model& model, Opt* optimizer) {
  using T = typename Model::value_type;
  const auto st = io::SafetensorsFile::open(path);
  const auto& meta = st.metadata();
  const auto it = meta.find(trainer_metadata_key);
  if (it == meta.end())
    throw ParseError(path, 0, "__metadata__",
                     "no 'trainer' entry: not a training checkpoint of this p4lm version (start over in "
                     "another output folder, or without resuming)");
  nlohmann::json trainer;
  try {
    trainer = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw ParseError(path, 0, "__metadata__", std::string("'trainer' is not valid JSON: ") + e.what());
  }
  // The architecture as written (compared as JSON, so defaults resolved on loading do not differ).
  if constexpr (requires { to_json(model.config()); }) {
    const auto c = meta.find("config");
    if (c != meta.end() && nlohmann::json::parse(c->second) != to_json(model.config()) &&
        !(model_config_from_json(nlohmann::json::parse(c->second)) == model.config()))
      fail<InvalidArgument>(path.string(), ": checkpoint of the model ", c->second, ", this run's model is ",
                            to_json(model.config()).dump());
  }
  auto params = model.parameters();
  for (auto& p : params) detail::read_exact<T>(st, p.name, p.value);
  if (optimizer) {
    const auto o = meta.find("optimizer");
    if (o == meta.end()) throw ParseError(path, 0, "__metadata__", "no optimizer state in this checkpoint");
    const std::int64_t steps = nlohmann::json::parse(o->second).at("step");
    optimizer->set_steps(steps);
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!optimizer->has_state(i)) continue;
      detail::read_exact<T>(st, "optimizer.m/" + params[i].name, optimizer->m(i, params[i].value.shape()));
      detail::read_exact<T>(st, "optimizer.v/" + params[i].name, optimizer->v(i, params[i].value.shape()));
    }
  }
  return trainer;
}

// The options of `now` whose values differ from `saved` (both JSON objects of option -> value), as
// "name (checkpoint X, this run Y)"; an option missing on one side counts as changed.
inline std::vector<std::string> changed_options(const nlohmann::json& saved, const nlohmann::json& now) {
  std::set<std::string> keys;
  for (const auto* j : {&saved, &now})
    if (j->is_object())
      for (const auto& [k, v] : j->items()) keys.insert(k);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    const auto a = saved.is_object() && saved.contains(k) ? saved.at(k) : nlohmann::json();
    const auto b = now.is_object() && now.contains(k) ? now.at(k) : nlohmann::json();
    if (a != b)
      out.push_back(k + " (checkpoint " + (a.is_null() ? "unset" : a.dump()) + ", this run " +
                    (b.is_null() ? "unset" : b.dump()) + ")");
  }
  return out;
}

}  // namespace p4lm::train
