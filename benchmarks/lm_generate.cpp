// Generation throughput with the KV cache: tokens/s of greedy decoding for stories260K (bundled) and
// Llama configs of ~15M (dim 288, 6 layers, 6 heads, vocab 32000) and ~110M (dim 768, 12 layers,
// 12 heads, vocab 32000) with random weights, and SmolLM2-135M-Instruct from the model cache
// (`--model smollm2`, or any GGUF Llama file: its weights dequantized to fp32), for one sequence and a
// batch of sequences. llama2.c's run.c is the peer (docs/performance.md, "Language models").
//
// Each decoding step reads every weight once (the embedding table only as the tied head), so one
// sequence is bound by memory bandwidth: the benchmark also prints the bytes of weights streamed per
// second and, as the physical reference measured in the same run, the read bandwidth of a 256 MB
// buffer summed by the same OpenMP threads.
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 bench_lm_generate --model 15M --batch
//   16 --json

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include <omp.h>

#include <nlohmann/json.hpp>

#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/model/gguf_model.hpp"

namespace {

// GB/s of the best of five sums over `bytes` of floats, split over the OpenMP team as the decoding
// products are (each thread one contiguous stretch).
double read_bandwidth_gb_s(std::size_t bytes) {
  std::vector<float> buf(bytes / sizeof(float), 1.0f);
  const auto n = static_cast<std::ptrdiff_t>(buf.size());
  const float* p = buf.data();
  double best = 1e30;
  volatile float keep = 0;  // the sums are used, so the loop cannot be dropped
  for (int r = 0; r < 5; ++r) {
    float sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
    for (std::ptrdiff_t i = 0; i < n; ++i) sum += p[i];
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    keep = keep + sum;
  }
  return static_cast<double>(bytes) / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "15M";
  std::size_t batch = 1, tokens = 256, repeats = 1;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model")
      which = argv[++i];
    else if (a == "--batch")
      batch = std::stoull(argv[++i]);
    else if (a == "--tokens")
      tokens = std::stoull(argv[++i]);
    else if (a == "--repeats")
      repeats = std::stoull(argv[++i]);
    else if (a == "--json")
      json = true;
    else {
      std::cerr << "usage: bench_lm_generate [--model stories260K|15M|110M|smollm2|<file.gguf>] [--batch 1] "
                   "[--tokens 256] "
                   "[--repeats 1] [--json]\n";
      return 2;
    }
  }
  auto make = [&]() -> p4lm::LlamaLM<float> {
    if (which == "stories260K")
      return p4lm::load_llama2c_model(p4lm::data_path("tiny-lm/stories260K/stories260K.bin"));
    if (which == "smollm2" || which.ends_with(".gguf")) {
      const auto path =
          which == "smollm2" ? p4lm::smollm2_path() : std::optional<std::filesystem::path>(which);
      if (!path) throw p4lm::DataNotFound("smollm2 is not in the model cache: run scripts/fetch-models.sh");
      return std::move(p4lm::load_gguf_model(*path).model);
    }
    p4lm::ModelConfig c{.arch = "llama",
                        .vocab_size = 32000,
                        .d_model = 288,
                        .n_layers = 6,
                        .n_heads = 6,
                        .n_kv_heads = 6,
                        .d_ff = 768,
                        .max_seq = 256};
    if (which == "110M")
      c.d_model = 768, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12, c.d_ff = 2048, c.max_seq = 1024;
    else if (which != "15M")
      throw p4lm::InvalidArgument("--model must be stories260K, 15M, 110M, smollm2 or a .gguf file");
    p4lm::LlamaLM<float> m(c);
    p4lm::Rng rng(1);
    m.init_random(rng, 0.05);
    return m;
  };
  auto model = make();
  tokens = std::min(tokens, model.config().max_seq - 1);
  const std::vector<std::vector<std::int32_t>> prompts(batch, std::vector<std::int32_t>{1});
  p4lm::Generator<p4lm::LlamaLM<float>> gen(model);
  const p4lm::SamplingOptions o{.max_new_tokens = tokens, .temperature = 0};
  gen.generate(prompts, {.max_new_tokens = 8, .temperature = 0});  // warm the cache and the workspace
  // Wall time, and the CPU time of every thread of the process: on a machine shared with other jobs
  // the wall time of 2 threads swings by 10x, the CPU time of 1 thread barely moves.
  double seconds = 1e30, cpu_seconds = 1e30;
  std::size_t produced = 0;
  for (std::size_t r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    const auto out = gen.generate(prompts, o);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    produced = 0;
    for (const auto& t : out.tokens) produced += t.size();
    seconds = std::min(seconds, dt);
    cpu_seconds = std::min(cpu_seconds, cpu);
  }
  const double tps = static_cast<double>(produced) / seconds;
  const double cpu_tps = static_cast<double>(produced) / cpu_seconds;
  // Bytes of weights one decoding step reads; the step count is the longest sequence's token count.
  const auto& cfg = model.config();
  const double weight_bytes =
      static_cast<double>(model.num_parameters() - (cfg.tied_head ? 0 : cfg.vocab_size * cfg.d_model)) *
      sizeof(float);
  const double weights_gb_s = weight_bytes * (tps / static_cast<double>(batch)) / 1e9;
  const double read_gb_s = read_bandwidth_gb_s(std::size_t{256} << 20);
  if (json) {
    std::cout << nlohmann::json{{"benchmark", "lm_generate"},
                                {"model", which},
                                {"params", model.num_parameters()},
                                {"batch", batch},
                                {"new_tokens_per_sequence", tokens},
                                {"tokens", produced},
                                {"seconds", seconds},
                                {"tokens_per_s", tps},
                                {"cpu_seconds", cpu_seconds},
                                {"tokens_per_cpu_s", cpu_tps},
                                {"weight_bytes_per_step", weight_bytes},
                                {"weights_gb_per_s", weights_gb_s},
                                {"read_gb_per_s", read_gb_s},
                                {"omp_threads", omp_get_max_threads()},
                                {"openblas_core", openblas_get_corename()}}
                     .dump()
              << '\n';
  } else {
    std::cout << which << " (" << model.num_parameters() << " params), batch " << batch << ": " << produced
              << " tokens in " << seconds << " s = " << tps << " tokens/s, " << cpu_tps
              << " tokens per CPU second (OpenBLAS core " << openblas_get_corename() << ", "
              << omp_get_max_threads() << " OpenMP threads)\n"
              << "weights streamed at " << weights_gb_s
              << " GB/s; read bandwidth of this machine (256 MB, same "
              << "threads): " << read_gb_s << " GB/s (" << 100 * weights_gb_s / read_gb_s << "%)\n";
  }
  return 0;
}
