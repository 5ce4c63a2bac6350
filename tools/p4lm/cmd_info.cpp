// `p4lm info`: what data and models p4lm can see, and where it found them.

#include <cstdint>
#include <fstream>
#include <iostream>

#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

struct InfoConfig {
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<bool> json{false, "print the inventory as one JSON object"};
};

std::uint64_t count_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  std::uint64_t lines = 0;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) lines += buffer[i] == '\n';
  }
  return lines;
}

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::InfoConfig, data, json);

namespace p4lm::cli {
namespace {

nlohmann::json inventory(const std::filesystem::path& root) {
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

int run_info(std::span<const std::string> args) {
  const auto config = parse_flags<InfoConfig>(args);
  const auto root = config.data->empty() ? data_dir() : std::filesystem::path(*config.data);
  const auto found = inventory(root);
  if (*config.json) {
    std::cout << found.dump() << '\n';
    return 0;
  }
  std::cout << "p4lm " << version_string << "\ndata folder: " << found["data_dir"].get<std::string>() << '\n';
  for (const auto& [name, value] : found.items()) {
    if (name != "data_dir") std::cout << "  " << name << ": " << value.dump() << '\n';
  }
  return 0;
}

const Registration info_registration{
    "info", Command{"show the data and models p4lm finds, and where", flags_help<InfoConfig>(), run_info}};

}  // namespace
}  // namespace p4lm::cli
