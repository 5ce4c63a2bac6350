#pragma once
// What data and models the `p4lm` program can see: shared by `p4lm info` and `p4lm run`.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <p4lm/p4lm.hpp>

namespace p4lm::cli {

inline std::uint64_t count_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  std::uint64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) lines += buffer[i] == '\n';
  }
  return lines;
}

inline nlohmann::json inventory(const std::filesystem::path& root) {
  nlohmann::json out;
  out["data_dir"] = root.string();
  auto csv_rows = [&](const char* relative) {
    const auto path = root / relative;
    if (!std::filesystem::exists(path)) return nlohmann::json(nullptr);
    return nlohmann::json(count_lines(path) - 1);  // minus the header
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
    out["stories260K"] = {{"dim", header[0]},      {"hidden_dim", header[1]}, {"n_layers", header[2]},
                          {"n_heads", header[3]},  {"n_kv_heads", header[4]}, {"vocab_size", std::abs(header[5])},
                          {"seq_len", header[6]},  {"bytes", std::filesystem::file_size(model)}};
  }
  return out;
}

}  // namespace p4lm::cli
