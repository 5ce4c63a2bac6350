#pragma once
// What data and models p4lm sees: row counts of the data folder's MovieLens and overview CSV files,
// the GPT-2 tokenizer's vocabulary and stories260K's shape (null where a file is absent), and the
// pretrained models of the model cache (core/model_cache.hpp: each with its path and whether
// scripts/fetch-models.sh has put it there). `p4lm info` prints it; `run_main` writes it to
// inventory.json as its first stage.
//
//   nlohmann::json found = p4lm::pipeline::inventory(p4lm::data_dir());

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/csv.hpp"

namespace p4lm::pipeline {

// Data rows of a CSV file (RFC 4180: quoted fields may hold newlines, so lines are not rows).
inline std::uint64_t count_csv_rows(const std::filesystem::path& path) {
  io::CsvReader reader(path);
  io::CsvRow row;
  std::uint64_t rows = 0;
  while (reader.next(row)) ++rows;
  return rows;
}

inline nlohmann::json inventory(const std::filesystem::path& root,
                                const std::filesystem::path& models = model_cache_dir()) {
  nlohmann::json out;
  out["data_dir"] = root.string();
  auto csv_rows = [&](const char* relative) {
    const auto path = root / relative;
    if (!std::filesystem::exists(path)) return nlohmann::json(nullptr);
    return nlohmann::json(count_csv_rows(path));
  };
  out["movielens"] = {{"ratings", csv_rows("movielens/ml-latest-small/ratings.csv")},
                      {"movies", csv_rows("movielens/ml-latest-small/movies.csv")},
                      {"tags", csv_rows("movielens/ml-latest-small/tags.csv")},
                      {"links", csv_rows("movielens/ml-latest-small/links.csv")}};
  out["overviews"] = csv_rows("plots/ml-latest-small_overviews.csv");
  const auto encoder = root / "gpt2-tokenizer/encoder.json";
  if (std::filesystem::exists(encoder))
    out["gpt2_tokenizer"] = {{"vocab", nlohmann::json::parse(io::read_file(encoder)).size()}};
  const auto model = root / "tiny-lm/stories260K/stories260K.bin";
  if (std::filesystem::exists(model)) {
    // llama2.c header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (int32).
    std::ifstream in(model, std::ios::binary);
    std::int32_t header[7] = {};
    in.read(reinterpret_cast<char*>(header), sizeof header);
    if (!in) fail<IoError>(model.string(), ": truncated llama2.c header");
    out["stories260K"] = {{"dim", header[0]},        {"hidden_dim", header[1]},
                          {"n_layers", header[2]},   {"n_heads", header[3]},
                          {"n_kv_heads", header[4]}, {"vocab_size", std::abs(header[5])},
                          {"seq_len", header[6]},    {"bytes", std::filesystem::file_size(model)}};
  }
  out["model_cache"] = models.string();
  for (const auto& m : cached_models(models))
    out["models"][m.name] = {{"kind", m.kind}, {"path", m.path.string()}, {"present", m.present}};
  return out;
}

}  // namespace p4lm::pipeline
