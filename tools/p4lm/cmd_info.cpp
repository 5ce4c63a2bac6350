// `p4lm info`: what data and models p4lm can see, and where it found them.

#include <iostream>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/p4lm.hpp>
#include <p4lm/pipeline/inventory.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

struct InfoConfig {
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<bool> json{false, "print the inventory as one JSON object"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::InfoConfig, data, json);

namespace p4lm::cli {
namespace {

int run_info(std::span<const std::string> args) {
  const auto config = parse_flags<InfoConfig>(args);
  const auto root = data_dir(std::filesystem::path(*config.data));
  const auto found = pipeline::inventory(root);
  if (*config.json) {
    std::cout << found.dump() << '\n';
    return 0;
  }
  std::cout << "p4lm " << version_string << "\ndata folder: " << found["data_dir"].get<std::string>() << '\n';
  for (const auto& [name, value] : found.items()) {
    if (name != "data_dir" && name != "model_cache" && name != "models")
      std::cout << "  " << name << ": " << value.dump() << '\n';
  }
  std::cout << "model cache: " << found["model_cache"].get<std::string>()
            << " (P4LM_MODELS; scripts/fetch-models.sh fills it)\n";
  for (const auto& [name, m] : found["models"].items())
    std::cout << "  " << name << ": " << m["kind"].get<std::string>() << ", "
              << (m["present"].get<bool>() ? m["path"].get<std::string>() : "absent") << '\n';
  return 0;
}

const Registration info_registration{
    "info", Command{"show the data and models p4lm finds, and where", flags_help<InfoConfig>(), run_info}};

}  // namespace
}  // namespace p4lm::cli
