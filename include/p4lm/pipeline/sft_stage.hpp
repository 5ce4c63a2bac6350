#pragma once
// The SFT (warm-start) stage. train/warm_start.hpp's run_warm_start is already the whole stage as one
// library call (base model, corpus, both stages, held-out evaluation, curves, the pitch model); the
// pipeline forwards to it and adds what every pipeline stage shares: the CF width is checked against
// the one compiled list (cf/widths.hpp) before anything is loaded, with the same message as the
// other stages, and the stage's completion marker is named.
//
//   p4lm::train::WarmStartOptions o;
//   o.data = "runs/main/data"; o.cf = "runs/main/cf/cf.safetensors"; o.out = "runs/main/sft";
//   auto r = p4lm::pipeline::run_sft(o);   // resumes a killed run, reuses a finished one
//
// The flags of `p4lm sft` (tools/p4lm/sft_flags.hpp) map onto WarmStartOptions; `run_main` sets the
// few that `p4lm run` exposes (pipeline/run_config.hpp).

#include <filesystem>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/train/warm_start.hpp"

namespace p4lm::pipeline {

// Throws the compiled-widths UsageError when a CF-conditioned run names embeddings of another width.
inline void check_sft_inputs(const train::WarmStartOptions& o) {
  if (o.conditioning == train::Conditioning::cf) cf::check_cf_dim(cf::embeddings_dim(o.cf));
}

// True when o.out holds a finished run (what run_warm_start reuses).
inline bool sft_done(const train::WarmStartOptions& o) {
  return o.resume && std::filesystem::exists(o.out / "result.json") &&
         std::filesystem::exists(o.out / "model.safetensors");
}

inline train::WarmStartResult run_sft(const train::WarmStartOptions& o) {
  check_sft_inputs(o);
  return train::run_warm_start(o);
}

}  // namespace p4lm::pipeline
