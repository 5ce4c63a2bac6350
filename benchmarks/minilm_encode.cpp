// bench_minilm_encode: sentence embeddings per second of all-MiniLM-L6-v2 (BertEncoder::encode: the
// six layers, mean pooling, L2 normalisation) on batches of pre-tokenized sentences of equal length,
// the same inputs benchmarks/peers/minilm_encode_peer.py gives sentence-transformers on PyTorch.
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 build/release/benchmarks/bench_minilm_encode
//       --model models/all-minilm-l6-v2 --batch 32 --tokens 64 --repeats 5 [--json]
//
// Token ids: [CLS], tokens-2 ids drawn from a fixed generator in [1000, 30000), [SEP]; type 0; no
// padding. Tokenization is not timed (on either side). Reports the fastest of --repeats runs of
// --batches batches each.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <omp.h>
#include <nlohmann/json.hpp>

#include <p4lm/backend/cpu/blas.hpp>
#include <p4lm/core/model_cache.hpp>
#include <p4lm/model/bert_encoder.hpp>

#include "bench_support.hpp"

namespace {

// The same ids as the peer script: a 64-bit LCG (Knuth's MMIX constants), ids from its high bits.
std::vector<std::int32_t> make_ids(std::size_t batch, std::size_t tokens) {
  std::vector<std::int32_t> ids(batch * tokens);
  std::uint64_t s = 42;
  for (std::size_t b = 0; b < batch; ++b) {
    ids[b * tokens] = 101;
    for (std::size_t t = 1; t + 1 < tokens; ++t) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      ids[b * tokens + t] = static_cast<std::int32_t>(1000 + (s >> 33) % 29000);
    }
    ids[b * tokens + tokens - 1] = 102;
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir = (p4lm::model_cache_dir() / "all-minilm-l6-v2").string();
  std::size_t batch = 32, tokens = 64, batches = 8, repeats = 5;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return bench::flag_value(argc, argv, i); };
    if (a == "--model")
      model_dir = next();
    else if (a == "--batch")
      batch = std::stoul(next());
    else if (a == "--tokens")
      tokens = std::stoul(next());
    else if (a == "--batches")
      batches = std::stoul(next());
    else if (a == "--repeats")
      repeats = std::stoul(next());
    else if (a == "--json")
      json = true;
    else {
      std::cerr << "usage: bench_minilm_encode [--model dir] [--batch 32] [--tokens 64] [--batches 8] "
                   "[--repeats 5] [--json]\n";
      return 2;
    }
  }
  if (batch == 0 || tokens < 2 || tokens > 512 || batches == 0 || repeats == 0) {
    std::cerr << "bench_minilm_encode: need batch >= 1, 2 <= tokens <= 512, batches, repeats >= 1\n";
    return 2;
  }
  try {
    auto enc = p4lm::BertEncoder<>::load(model_dir);
    auto ids = make_ids(batch, tokens);
    const p4lm::TensorView<p4lm::backend::cpu, std::int32_t> idv(ids.data(), {batch, tokens});
    float checksum = enc.encode({.ids = idv}).data()[0];  // warm-up: workspace sized, pages touched
    double best = 1e300;
    for (std::size_t r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (std::size_t k = 0; k < batches; ++k) checksum += enc.encode({.ids = idv}).data()[0];
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double sps = static_cast<double>(batch * batches) / best;
    if (json) {
      std::cout << nlohmann::json{{"benchmark", "minilm_encode"},
                                  {"batch", batch},
                                  {"tokens", tokens},
                                  {"batches", batches},
                                  {"seconds", best},
                                  {"sentences_per_s", sps},
                                  {"omp_threads", omp_get_max_threads()},
                                  {"openblas_core", p4lm::backend::cpu_blas::corename()},
                                  {"cpu", bench::cpu_model()},
                                  {"checksum", checksum}}
                       .dump()
                << '\n';
    } else {
      std::cout << "all-MiniLM-L6-v2, batch " << batch << " x " << tokens << " tokens: " << sps
                << " sentences/s (" << best << " s for " << batch * batches << "; " << omp_get_max_threads()
                << " OpenMP threads, OpenBLAS core " << p4lm::backend::cpu_blas::corename() << ", "
                << bench::cpu_model() << ")\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_minilm_encode: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
