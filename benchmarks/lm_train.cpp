// Training throughput of a causal LM: tokens/s of full steps (forward, backward, AdamW) for the
// GPT-2 124M shape (random init, vocab 50257, 12 layers, 12 heads, width 768, context 1024).
// llm.c's train_gpt2.c is the peer (docs/performance.md, "Language models").
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 bench_lm_train --seq 64 --json

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <omp.h>

#include <nlohmann/json.hpp>

#include "lm_train_args.hpp"
#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/nn/adamw.hpp"

int main(int argc, char** argv) {
  LmTrainArgs args;
  if (!args.parse(argc, argv,
                  "usage: bench_lm_train [--batch 4] [--seq 64] [--steps 5] [--warmup 1] [--layers 12] "
                  "[--width 768] [--vocab 50257] [--arch gpt2|llama] [--json]"))
    return 2;
  const std::size_t B = args.batch, T = args.seq, steps = args.steps, warmup = args.warmup,
                    layers = args.layers, width = args.width, vocab = args.vocab;
  const std::string arch = args.arch;
  const bool json = args.json;
  p4lm::ModelConfig c{.arch = arch,
                      .vocab_size = vocab,
                      .d_model = width,
                      .n_layers = layers,
                      .n_heads = width / 64,
                      .n_kv_heads = 0,
                      .d_ff = 4 * width,
                      .max_seq = 1024};
  auto run = [&](auto& model) {
    p4lm::Rng rng(1);
    model.init_random(rng);
    p4lm::AdamW<float> opt(model.parameters(), {.lr = 1e-4, .weight_decay = 0.0});
    std::vector<std::int32_t> ids(B * T), targets(B * T);
    for (std::size_t i = 0; i < B * T; ++i) ids[i] = static_cast<std::int32_t>(rng.below(vocab));
    for (std::size_t i = 0; i < B * T; ++i) targets[i] = static_cast<std::int32_t>(rng.below(vocab));
    const p4lm::TensorView<p4lm::backend::cpu, std::int32_t> iv(ids.data(), p4lm::Shape{B, T}),
        tv(targets.data(), p4lm::Shape{B, T});
    double seconds = 0, loss = 0;
    for (std::size_t s = 0; s < warmup + steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      model.zero_grad();
      loss = model.forward({.ids = iv, .targets = tv});
      model.backward();
      opt.step(model.parameters());
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s >= warmup) seconds += dt;
    }
    const double step_s = seconds / static_cast<double>(steps);
    const double tps = static_cast<double>(B * T) / step_s;
    if (json) {
      std::cout << nlohmann::json{{"benchmark", "lm_train"},
                                  {"arch", arch},
                                  {"params", model.num_parameters()},
                                  {"batch", B},
                                  {"seq", T},
                                  {"steps", steps},
                                  {"step_s", step_s},
                                  {"tokens_per_s", tps},
                                  {"loss", loss},
                                  {"omp_threads", omp_get_max_threads()},
                                  {"blas_threads", openblas_get_num_threads()},
                                  {"openblas_core", openblas_get_corename()}}
                       .dump()
                << '\n';
    } else {
      std::cout << arch << " " << model.num_parameters() << " params, B=" << B << " T=" << T << ": " << step_s
                << " s/step, " << tps << " tokens/s (loss " << loss << "; OpenBLAS core "
                << openblas_get_corename() << ", " << omp_get_max_threads() << " OpenMP threads)\n";
    }
  };
  if (arch == "gpt2") {
    p4lm::GPT2LM<float> m(c);
    run(m);
  } else {
    p4lm::LlamaLM<float> m(c);
    run(m);
  }
  return 0;
}
