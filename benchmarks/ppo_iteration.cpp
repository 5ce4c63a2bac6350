// bench_ppo_iteration: the wall time of one PPO iteration of the RL stage, split into its phases:
// rollout (batched KV-cache sampling), the policy's forward (log-probs, entropies, values), the
// reference's forward, scoring (decoding + the reward mix) and the update (ppo_epochs passes of
// minibatch forward/backward + AdamW). The iteration is the one `p4lm rl` runs (same policy loader,
// prompts, reward mix and PPO objective), driven through rl::PPOTrainer; the phase times are the
// objective's time/* metrics, which the stage keeps out of its logs.
//
//   env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
//   build/release/benchmarks/bench_ppo_iteration
//       --sft runs/main/sft --data runs/main/data --rewards runs/main/rewards
//       --encoder models/all-minilm-l6-v2 --batch-size 8 --mini-batch-size 4 --ppo-epochs 1
//       --response-length 64 --iterations 5 --warmup 1 [--json]
//
// Prints every iteration, then per phase the median (min, max) over --iterations iterations after
// --warmup untimed ones, the median (min, max) of its share of each iteration, and its median's share
// of the median iteration. The reward's text-feature cache
// carries over between iterations as in a run (premises and profiles seen before are not re-encoded).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <omp.h>
#include <nlohmann/json.hpp>

#include <p4lm/backend/cpu/blas.hpp>
#include <p4lm/core/model_cache.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/pipeline/rl_stage.hpp>

#include "bench_support.hpp"

namespace {

struct Args {
  std::string sft, data, rewards, encoder, weights = "precision=1,appeal=1,personalization=1,relevance=1";
  std::size_t batch = 8, mini_batch = 4, epochs = 1, response = 64, iterations = 5, warmup = 1;
  std::uint64_t seed = 1;
  bool json = false;
};

Args parse(int argc, char** argv) {
  Args a;
  a.encoder = (p4lm::model_cache_dir() / "all-minilm-l6-v2").string();
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&] { return bench::flag_value(argc, argv, i); };
    if (k == "--sft")
      a.sft = next();
    else if (k == "--data")
      a.data = next();
    else if (k == "--rewards")
      a.rewards = next();
    else if (k == "--encoder")
      a.encoder = next();
    else if (k == "--weights")
      a.weights = next();
    else if (k == "--batch-size")
      a.batch = std::stoul(next());
    else if (k == "--mini-batch-size")
      a.mini_batch = std::stoul(next());
    else if (k == "--ppo-epochs")
      a.epochs = std::stoul(next());
    else if (k == "--response-length")
      a.response = std::stoul(next());
    else if (k == "--iterations")
      a.iterations = std::stoul(next());
    else if (k == "--warmup")
      a.warmup = std::stoul(next());
    else if (k == "--seed")
      a.seed = std::stoull(next());
    else if (k == "--json")
      a.json = true;
    else {
      std::cerr
          << "usage: bench_ppo_iteration --sft DIR --data DIR --rewards DIR [--encoder DIR] [--weights W]\n"
             "       [--batch-size 8] [--mini-batch-size 4] [--ppo-epochs 1] [--response-length 64]\n"
             "       [--iterations 5] [--warmup 1] [--seed 1] [--json]\n";
      std::exit(2);
    }
  }
  if (a.sft.empty() || a.data.empty() || a.rewards.empty()) {
    std::cerr << "bench_ppo_iteration: --sft, --data and --rewards are required\n";
    std::exit(2);
  }
  if (a.iterations == 0) {
    std::cerr << "bench_ppo_iteration: --iterations must be >= 1\n";
    std::exit(2);
  }
  return a;
}

// The phases, by the objective's metric names.
const std::vector<std::pair<std::string, std::string>> phases = {
    {"rollout", "time/rollout/generate"},
    {"policy_forward", "time/rollout/policy"},
    {"reference_forward", "time/rollout/reference"},
    {"scoring", "time/rollout/score"},
    {"update", "time/update"}};

}  // namespace

int main(int argc, char** argv) {
  namespace pl = p4lm::pipeline;
  const Args a = parse(argc, argv);
  try {
    const auto loader = p4lm::rl::PitchPolicyLoader::open(a.sft);
    const std::filesystem::path data = a.data;
    const p4lm::train::PitchSources sources(data);
    // The stage's prompt pool: train-split users x catalog movies.
    std::vector<std::int64_t> users, movies;
    p4lm::io::for_each_jsonl(data / "profiles.jsonl", [&](const nlohmann::json& j, std::size_t) {
      if (j.at("split").get<std::string>() == "train") users.push_back(j.at("user_id").get<std::int64_t>());
    });
    p4lm::io::for_each_jsonl(data / "catalog.jsonl", [&](const nlohmann::json& j, std::size_t) {
      movies.push_back(j.at("movie_id").get<std::int64_t>());
    });
    if (users.empty() || movies.empty()) {
      std::cerr << "bench_ppo_iteration: no train user or no movie in " << a.data << '\n';
      return 1;
    }
    auto reward = pl::load_reward_mix(a.rewards, a.weights, a.encoder, data, loader);

    loader.with_policy([&](auto policy) {
      using Policy = decltype(policy);
      auto& keys = policy.prefix().keys();
      p4lm::rl::PitchPrompter prompter(loader, sources, keys);
      auto components = std::make_shared<std::map<std::string, double>>();
      pl::detail::SampleReward sample_reward{&keys, &loader.codec(), reward, components};
      p4lm::rl::PPOConfig p;  // the stage's defaults (RlConfig) for what does not change the cost
      p.batch_size = a.batch, p.mini_batch_size = a.mini_batch, p.ppo_epochs = a.epochs;
      p.learning_rate = 1e-5, p.init_kl_coef = 0.1, p.target = 4, p.vf_coef = 0.1;
      p.response_length = a.response, p.eos_token_id = loader.codec().eos, p.missing_eos_penalty = 1.0;
      p.seed = a.seed;
      p4lm::rl::PPOTrainer<Policy, pl::detail::SampleReward> ppo(std::move(policy), sample_reward, p);

      std::map<std::string, std::vector<double>> t;      // phase -> seconds per timed iteration
      std::map<std::string, std::vector<double>> share;  // phase -> its fraction of each timed iteration
      std::vector<double> lengths;
      const auto params = ppo.policy().lm().config();
      if (!a.json)
        std::cout << "PPO iteration: " << a.sft << " (d_model " << params.d_model << ", " << params.n_layers
                  << " layers), batch " << a.batch << ", mini-batch " << a.mini_batch << ", " << a.epochs
                  << " epoch(s), response <= " << a.response << " tokens; " << omp_get_max_threads()
                  << " OpenMP threads, OpenBLAS core " << p4lm::backend::cpu_blas::corename() << ", "
                  << bench::cpu_model() << std::endl;
      for (std::size_t it = 0; it < a.warmup + a.iterations; ++it) {
        // The stage's prompt stream (rl_stage.hpp): iteration it draws from Rng(seed + it, stream).
        p4lm::Rng rng(a.seed + it, pl::detail::rl_prompt_stream);
        std::vector<p4lm::rl::Prompt> prompts;
        for (std::size_t k = 0; k < a.batch; ++k)
          prompts.push_back(
              prompter.prompt(users[rng.next_u64() % users.size()], movies[rng.next_u64() % movies.size()]));
        const auto t0 = std::chrono::steady_clock::now();
        const auto m = ppo.step(prompts);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double sum = 0;
        for (const auto& [name, key] : phases) sum += m.at(key);
        const bool timed = it >= a.warmup;
        if (!a.json) {
          std::cout << (timed ? "iteration " : "warm-up   ") << it + 1 << ": " << std::fixed
                    << std::setprecision(3);
          for (const auto& [name, key] : phases) std::cout << name << ' ' << m.at(key) << " s, ";
          std::cout << "other " << wall - sum << " s, total " << wall << " s; mean response "
                    << m.at("env/response_length") << " tokens" << std::defaultfloat
                    << std::endl;  // flushed: a run cut short keeps its iterations
        }
        if (!timed) continue;
        for (const auto& [name, key] : phases) t[name].push_back(m.at(key));
        t["other"].push_back(wall - sum);
        t["total"].push_back(wall);
        for (const auto& [name, key] : phases) share[name].push_back(m.at(key) / wall);
        share["other"].push_back((wall - sum) / wall);
        share["total"].push_back(1.0);
        lengths.push_back(m.at("env/response_length"));
      }
      const double total = bench::median(t["total"]);
      nlohmann::json j{{"benchmark", "ppo_iteration"},
                       {"sft", a.sft},
                       {"d_model", params.d_model},
                       {"n_layers", params.n_layers},
                       {"batch_size", a.batch},
                       {"mini_batch_size", a.mini_batch},
                       {"ppo_epochs", a.epochs},
                       {"response_length", a.response},
                       {"iterations", a.iterations},
                       {"warmup", a.warmup},
                       {"mean_response_tokens", bench::median(lengths)},
                       {"omp_threads", omp_get_max_threads()},
                       {"openblas_core", p4lm::backend::cpu_blas::corename()},
                       {"cpu", bench::cpu_model()}};
      std::vector<std::string> names;
      for (const auto& [name, key] : phases) names.push_back(name);
      names.push_back("other"), names.push_back("total");
      for (const auto& name : names) {
        const auto& v = t[name];
        const auto& f = share[name];
        const double med = bench::median(v);
        const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
        const auto [flo, fhi] = std::minmax_element(f.begin(), f.end());
        j["phases"][name] = {{"median_s", med},
                             {"min_s", *lo},
                             {"max_s", *hi},
                             {"share_of_median_total", total > 0 ? med / total : 0.0},
                             {"share_median", bench::median(f)},
                             {"share_min", *flo},
                             {"share_max", *fhi}};
        if (!a.json)
          std::cout << std::left << std::setw(18) << name << std::right << std::fixed << std::setprecision(3)
                    << " median " << med << " s (min " << *lo << ", max " << *hi
                    << "); share of each iteration " << std::setprecision(1) << 100 * bench::median(f)
                    << " % (min " << 100 * *flo << ", max " << 100 * *fhi << "), of the median iteration "
                    << 100 * med / total << " %\n"
                    << std::defaultfloat;
      }
      if (a.json) std::cout << j.dump() << '\n';
    });
  } catch (const std::exception& e) {
    std::cerr << "bench_ppo_iteration: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
