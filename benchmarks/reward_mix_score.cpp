// bench_reward_mix_score: pitches scored per second by the full P4LM reward mix (precision, appeal,
// personalization, preference relevance on one frozen all-MiniLM-L6-v2: pipeline::load_reward_mix, what
// `p4lm rl` scores its rollouts with), on real pitches in batches of --batch.
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
//   build/release/benchmarks/bench_reward_mix_score
//       --rewards runs/main/rewards --data runs/main/data --cf runs/main/cf/cf.safetensors
//       --encoder models/all-minilm-l6-v2 --pitches runs/main/data/sft/test.jsonl --count 256 --batch 16
//       [--json]
//
// A pass scores the first --count pitches of --pitches (JSONL with user_id, movie_id, pitch) in file
// order, --batch at a time, with a freshly loaded mix (loading is not timed): the text-feature cache
// starts empty and carries over between the batches of the pass, as it does between PPO iterations,
// so a movie's premise or a user's profile is encoded the first time it comes. Reports the time of
// each of --repeats passes (no best-of) and pitches/s of their median, after an untimed warm-up batch
// (the first --batch pitches, scored by a mix of its own).
// --dump-texts FILE writes, per pitch, the texts the mix encodes (pitch, its sentences as precision and
// personalization split them, premise, profile): benchmarks/peers/reward_mix_encode_peer.py replays them.

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
#include <p4lm/data/catalog.hpp>
#include <p4lm/eval/catalog_file.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/pipeline/rl_stage.hpp>
#include <p4lm/reward/precision.hpp>
#include <p4lm/train/pitch_writer.hpp>

#include "bench_support.hpp"

namespace {}  // namespace

int main(int argc, char** argv) {
  namespace pl = p4lm::pipeline;
  std::string rewards, data, cf, pitches_file, dump;
  std::string encoder = (p4lm::model_cache_dir() / "all-minilm-l6-v2").string();
  std::string weights = "precision=1,appeal=1,personalization=1,relevance=1";
  std::size_t count = 256, batch = 16, repeats = 1;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return bench::flag_value(argc, argv, i); };
    if (a == "--rewards")
      rewards = next();
    else if (a == "--data")
      data = next();
    else if (a == "--cf")
      cf = next();
    else if (a == "--encoder")
      encoder = next();
    else if (a == "--weights")
      weights = next();
    else if (a == "--pitches")
      pitches_file = next();
    else if (a == "--count")
      count = std::stoul(next());
    else if (a == "--batch")
      batch = std::stoul(next());
    else if (a == "--repeats")
      repeats = std::stoul(next());
    else if (a == "--dump-texts")
      dump = next();
    else if (a == "--json")
      json = true;
    else {
      std::cerr
          << "usage: bench_reward_mix_score --rewards DIR --data DIR --cf FILE --pitches FILE [--encoder "
             "DIR]\n"
             "       [--weights W] [--count 256] [--batch 16] [--repeats 1] [--dump-texts FILE] [--json]\n";
      return 2;
    }
  }
  if (rewards.empty() || data.empty() || cf.empty() || pitches_file.empty() || count == 0 || batch == 0 ||
      repeats == 0) {
    std::cerr << "bench_reward_mix_score: need --rewards, --data, --cf, --pitches, and count, batch, "
                 "repeats >= 1\n";
    return 2;
  }
  try {
    std::vector<pl::PitchToScore> pitches;
    p4lm::io::for_each_jsonl(pitches_file, [&](const nlohmann::json& j, std::size_t) {
      if (pitches.size() < count)
        pitches.push_back({j.at("user_id").get<std::int64_t>(), j.at("movie_id").get<std::int64_t>(),
                           j.at("pitch").get<std::string>(), true});
    });
    if (pitches.size() < count) {
      std::cerr << "bench_reward_mix_score: " << pitches_file << " holds " << pitches.size()
                << " pitches, --count " << count << '\n';
      return 1;
    }
    if (!dump.empty()) {  // the texts load_reward_mix gives the rewards, as it builds them
      const auto catalog = p4lm::eval::read_catalog(std::filesystem::path(data) / "catalog.jsonl");
      const p4lm::train::PitchSources sources(data);
      p4lm::io::write_jsonl_with(dump, [&](auto&& emit) {
        for (const auto& p : pitches)
          emit(nlohmann::json{{"pitch", p.pitch},
                              {"sentences", p4lm::reward::split_sentences(p.pitch)},
                              {"premise", p4lm::data::premise_text(catalog.by_movie_id(p.movie_id))},
                              {"profile", sources.request(p.user_id, p.movie_id).profile}});
      });
    }
    double checksum = 0;
    {  // warm-up with a mix of its own: workspaces sized, pages touched (the peer warms up too)
      auto mix = pl::load_reward_mix(rewards, weights, encoder, data, cf);
      checksum += mix(std::span<const pl::PitchToScore>(pitches).first(std::min(batch, count))).total.at(0);
    }
    std::vector<double> seconds;
    for (std::size_t r = 0; r < repeats; ++r) {
      auto mix = pl::load_reward_mix(rewards, weights, encoder, data, cf);  // empty caches
      const auto t0 = std::chrono::steady_clock::now();
      for (std::size_t s = 0; s < count; s += batch) {
        const auto n = std::min(batch, count - s);
        const auto scores = mix(std::span<const pl::PitchToScore>(pitches).subspan(s, n));
        checksum += scores.total.at(0);
      }
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double med = bench::median(seconds), pps = double(count) / med;
    if (json) {
      std::cout << nlohmann::json{{"benchmark", "reward_mix_score"},
                                  {"count", count},
                                  {"batch", batch},
                                  {"seconds", seconds},
                                  {"median_seconds", med},
                                  {"pitches_per_s", pps},
                                  {"omp_threads", omp_get_max_threads()},
                                  {"openblas_core", p4lm::backend::cpu_blas::corename()},
                                  {"cpu", bench::cpu_model()},
                                  {"checksum", checksum}}
                       .dump()
                << '\n';
    } else {
      std::cout << "reward mix, " << count << " pitches in batches of " << batch << ": " << pps
                << " pitches/s (median of " << repeats << " passes, " << med << " s; "
                << omp_get_max_threads() << " OpenMP threads, OpenBLAS core "
                << p4lm::backend::cpu_blas::corename() << ", " << bench::cpu_model() << ")\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_reward_mix_score: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
