// Throughput of the CSV reader and the MovieLens loader on an ml-25m-sized ratings file.
//   build/benchmarks/bench_csv_ratings --folder /tmp/p4lm-ml25m-synthetic
// Writes movies.csv and ratings.csv (25,000,095 rows, ~680 MB, ml-25m's format) there if absent,
// then times (1) a plain scan of every field with io::CsvReader and (2) cf::load_movielens.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include <p4lm/cf/movielens.hpp>
#include <p4lm/core/config.hpp>
#include <p4lm/core/rng.hpp>
#include <p4lm/io/csv.hpp>

namespace {
struct CsvBenchConfig {
  p4lm::Param<std::string> folder{"/tmp/p4lm-ml25m-synthetic", "where the synthetic files live"};
  p4lm::Param<std::int64_t> users{162541, "users"};
  p4lm::Param<std::int64_t> items{62423, "movies"};
  p4lm::Param<std::int64_t> ratings{25000095, "ratings"};
};
}  // namespace

BOOST_HANA_ADAPT_STRUCT(CsvBenchConfig, folder, users, items, ratings);

namespace {
void write_synthetic(const std::filesystem::path& dir, const CsvBenchConfig& c) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream movies(dir / "movies.csv");
    movies << "movieId,title,genres\n";
    for (std::int64_t i = 1; i <= *c.items; ++i)
      movies << i << ",\"Movie " << i << ", The (" << 1900 + i % 120 << ")\",Drama|Comedy\n";
  }
  std::FILE* f = std::fopen((dir / "ratings.csv").c_str(), "wb");
  std::fputs("userId,movieId,rating,timestamp\n", f);
  p4lm::Rng rng(7);
  const std::int64_t per_user = *c.ratings / *c.users;
  std::int64_t written = 0;
  for (std::int64_t u = 1; u <= *c.users; ++u) {
    const std::int64_t n = u == *c.users ? *c.ratings - written : per_user;
    // Distinct movies per user (the loader refuses duplicate ratings): a random run of consecutive ids.
    const auto offset = rng.below(static_cast<std::uint64_t>(*c.items));
    for (std::int64_t k = 0; k < n; ++k) {
      const auto item = 1 + (offset + static_cast<std::uint64_t>(k)) % static_cast<std::uint64_t>(*c.items);
      const auto half_stars = 1 + rng.below(10);
      std::fprintf(f, "%lld,%llu,%.1f,%llu\n", static_cast<long long>(u),
                   static_cast<unsigned long long>(item), 0.5 * static_cast<double>(half_stars),
                   static_cast<unsigned long long>(1000000000 + rng.below(500000000)));
    }
    written += n;
  }
  std::fclose(f);
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
// CPU seconds of this (single-threaded) process: close to the wall time on an idle machine.
double cpu_since(std::clock_t t) {
  return static_cast<double>(std::clock() - t) / CLOCKS_PER_SEC;
}
}  // namespace

int main(int argc, char** argv) try {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--help") {
    std::cout << p4lm::flags_help<CsvBenchConfig>();
    return 0;
  }
  const auto c = p4lm::parse_flags<CsvBenchConfig>(args);
  const std::filesystem::path dir = *c.folder;
  if (!std::filesystem::exists(dir / "ratings.csv")) {
    std::cout << "writing " << (dir / "ratings.csv").string() << " ..." << std::endl;
    write_synthetic(dir, c);
  }
  const auto bytes = std::filesystem::file_size(dir / "ratings.csv");
  auto t = std::chrono::steady_clock::now();
  auto c0 = std::clock();
  p4lm::io::CsvReader csv(dir / "ratings.csv");
  p4lm::io::CsvRow row;
  std::uint64_t rows = 0, chars = 0;
  while (csv.next(row)) {
    ++rows;
    chars += row[0].size();
  }
  const double scan = since(t), scan_cpu = cpu_since(c0);
  std::cout << "scan: " << rows << " rows, " << bytes / 1e6 << " MB in " << scan << " s wall, " << scan_cpu
            << " s CPU (" << bytes / 1e6 / scan_cpu << " MB per CPU second)" << (chars == 0 ? " (empty)" : "")
            << std::endl;
  t = std::chrono::steady_clock::now();
  const auto ml = p4lm::cf::load_movielens(dir, {.tags = false, .genome = false});
  const double load = since(t);
  std::cout << "load_movielens: " << ml.ratings.size() << " ratings, " << ml.users.size() << " users, "
            << ml.movies.size() << " movies in " << load << " s wall, " << cpu_since(c0) << " s CPU"
            << std::endl;
  return 0;
} catch (const p4lm::UsageError& e) {
  std::cerr << "bench_csv_ratings: " << e.what() << "\n";
  return 2;
}
