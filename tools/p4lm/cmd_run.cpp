// `p4lm run`: the main job. Runs the pipeline stages that exist on the bundled (or given) data and
// writes every artifact under --out. Each stage is also its own subcommand.

#include <iostream>

#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"
#include "p4lm/inventory.hpp"

namespace p4lm::cli {
namespace {
struct RunConfig {
  Param<std::string> data{"", "data folder (default: P4LM_DATA, install prefix, source tree)"};
  Param<std::string> out{"runs/main", "output folder for every artifact of the run"};
  Param<long> seed{1, "seed of every random choice in the run"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::RunConfig, data, out, seed);

namespace p4lm::cli {
namespace {

int run_main(std::span<const std::string> args) {
  const auto config = parse_flags<RunConfig>(args);
  const std::filesystem::path out = *config.out;
  const auto root = data_dir(std::filesystem::path(*config.data));
  io::write_file_atomically(out / "config.json", to_json(config).dump(2) + "\n");

  std::cout << "[1] data inventory\n";
  const auto found = inventory(root);
  for (const auto& [name, value] : found.items()) std::cout << "    " << name << ": " << value.dump() << '\n';
  io::write_file_atomically(out / "inventory.json", found.dump(2) + "\n");

  std::cout << "artifacts in " << out.string() << '\n';
  return 0;
}

const Registration run_registration{
    "run", Command{"the main job: every pipeline stage on the bundled data", flags_help<RunConfig>(), run_main}};

}  // namespace
}  // namespace p4lm::cli
