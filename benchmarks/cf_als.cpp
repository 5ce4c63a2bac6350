// ALS epoch time by embedding width, on the bundled ml-latest-small and on a synthetic matrix of
// ml-25m's size, with 1 and 2 OpenMP threads. A program, not a test: run it on a quiet machine.
//   build/benchmarks/bench_cf_als --dims 16,32,64,128 --threads 1,2 --epochs 2
//   build/benchmarks/bench_cf_als --synthetic --dims 16,32,64,128 --epochs 1
// Prints one markdown row per (data, model, dim, threads): wall and CPU seconds per epoch (medians).

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <p4lm/cf/als.hpp>
#include <p4lm/cf/implicit_als.hpp>
#include <p4lm/cf/movielens.hpp>
#include <p4lm/core/config.hpp>
#include <p4lm/core/rng.hpp>

extern "C" char* openblas_get_corename(void);

namespace {

struct BenchConfig {
  p4lm::Param<std::vector<int>> dims{{16, 32, 64, 128}, "embedding widths"};
  p4lm::Param<std::vector<int>> threads{{1, 2}, "OpenMP thread counts"};
  p4lm::Param<int> epochs{2, "timed epochs per setting (after no warm-up: ALS epochs cost the same)"};
  p4lm::Param<bool> synthetic{false, "use a random matrix of ml-25m's size instead of ml-latest-small"};
  p4lm::Param<std::int64_t> users{162541, "synthetic: users"};
  p4lm::Param<std::int64_t> items{59047, "synthetic: items"};
  p4lm::Param<std::int64_t> ratings{25000095, "synthetic: ratings"};
  p4lm::Param<bool> implicit{true, "also time implicit ALS (3 CG steps)"};
};

}  // namespace

BOOST_HANA_ADAPT_STRUCT(BenchConfig, dims, threads, epochs, synthetic, users, items, ratings, implicit);

namespace {

// Users uniform, items skewed towards low indices (popular head, long tail), ratings 0.5..5.
p4lm::cf::Ratings synthetic_ratings(std::int64_t users, std::int64_t items, std::int64_t n) {
  p4lm::cf::Ratings r;
  r.n_users = static_cast<std::size_t>(users);
  r.n_items = static_cast<std::size_t>(items);
  r.reserve(static_cast<std::size_t>(n));
  p4lm::Rng rng(42);
  for (std::int64_t k = 0; k < n; ++k) {
    const auto u = static_cast<p4lm::cf::Index>(rng.below(static_cast<std::uint64_t>(users)));
    const double x = rng.uniform_double();
    const auto i = static_cast<p4lm::cf::Index>(static_cast<double>(items) * x * x * x);
    r.add(u, i, 0.5f * static_cast<float>(1 + rng.below(10)));
  }
  return r;
}

struct EpochTime {
  double wall, cpu;  // seconds per epoch, medians; cpu sums all threads (robust to a busy machine)
};

template <class Model>
EpochTime seconds_per_epoch(const Model& model, const p4lm::cf::Ratings& r) {
  std::vector<double> wall, cpu;
  auto last = std::chrono::steady_clock::now();
  auto last_cpu = std::clock();
  model.fit(r, [&](int, const auto&) {
    const auto now = std::chrono::steady_clock::now();
    const auto now_cpu = std::clock();
    wall.push_back(std::chrono::duration<double>(now - last).count());
    cpu.push_back(static_cast<double>(now_cpu - last_cpu) / CLOCKS_PER_SEC);
    last = now;
    last_cpu = now_cpu;
  });
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

template <int Dim>
void run(const BenchConfig& c, const p4lm::cf::Ratings& r, const std::string& data, int threads) {
  omp_set_num_threads(threads);
  auto row = [&](const char* model, EpochTime t) {
    std::cout << "| " << data << " | " << model << " | " << Dim << " | " << threads << " | " << std::fixed
              << std::setprecision(3) << t.wall << " | " << t.cpu << " |" << std::endl;
  };
  row("als", seconds_per_epoch(p4lm::cf::ALS<Dim>({.epochs = *c.epochs}), r));
  if (*c.implicit)
    row("implicit-als", seconds_per_epoch(p4lm::cf::ImplicitALS<Dim>({.epochs = *c.epochs}), r));
}

}  // namespace

int main(int argc, char** argv) try {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--help") {
    std::cout << p4lm::flags_help<BenchConfig>();
    return 0;
  }
  const auto c = p4lm::parse_flags<BenchConfig>(args);
  std::cout << "OpenBLAS core: " << openblas_get_corename()
            << ", OpenMP max threads: " << omp_get_max_threads() << "\n";
  p4lm::cf::Ratings r;
  std::string data;
  if (*c.synthetic) {
    r = synthetic_ratings(*c.users, *c.items, *c.ratings);
    data = "synthetic " + std::to_string(*c.users) + "x" + std::to_string(*c.items) + ", " +
           std::to_string(r.size());
  } else {
    r = p4lm::cf::load_movielens(p4lm::cf::bundled_movielens(), {.tags = false, .genome = false}).ratings;
    data = "ml-latest-small, " + std::to_string(r.size());
  }
  std::cout << "| data | model | dim | threads | wall s/epoch | CPU s/epoch |\n|---|---|---|---|---|---|\n";
  for (int dim : *c.dims)
    for (int threads : *c.threads) {
      switch (dim) {
        case 16:
          run<16>(c, r, data, threads);
          break;
        case 32:
          run<32>(c, r, data, threads);
          break;
        case 64:
          run<64>(c, r, data, threads);
          break;
        case 128:
          run<128>(c, r, data, threads);
          break;
        default:
          std::cerr << "skipping dim " << dim << " (16, 32, 64, 128)\n";
      }
    }
  return 0;
} catch (const p4lm::UsageError& e) {
  std::cerr << "bench_cf_als: " << e.what() << "\n";
  return 2;
}
