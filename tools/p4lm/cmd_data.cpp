// `p4lm data build`: the item catalog, user profiles, the teacher's pitch corpus and the AI-feedback
// datasets (stages 3-4 of the pipeline), as JSONL under --out (layout and schemas: docs/data.md), through
// pipeline::build_data (include/p4lm/pipeline/data_stage.hpp).
//   p4lm data build --out runs/data                          bundled ml-latest-small + TMDB overviews
//   p4lm data build --cf runs/cf/cf.safetensors --out ...   relevance targets and the split of that model

#include <iostream>

#include <p4lm/pipeline/data_stage.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

int run_build(std::span<const std::string> args) {
  const auto stats = pipeline::build_data(parse_flags<pipeline::DataBuildConfig>(args));
  const auto& splits = stats["splits"];
  std::cout << "wrote " << stats["config"]["out"].get<std::string>() << ": " << splits["train"]["sft"]
            << " train pitches (" << splits["val"]["sft"] << " val, " << splits["test"]["sft"]
            << " test), defects " << stats["defects"].dump() << ", " << stats["seconds"] << " s\n";
  return 0;
}

int run_data(std::span<const std::string> args) {
  if (args.empty()) fail<UsageError>("expected a verb: build (see p4lm data --help)");
  if (args[0] != "build") fail<UsageError>("unknown verb '", args[0], "': expected build");
  const auto rest = args.subspan(1);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << "usage: p4lm data build [options]\n\n" << flags_help<pipeline::DataBuildConfig>();
    return 0;
  }
  return run_build(rest);
}

const Registration data_registration{
    "data",
    Command{"catalog, profiles, teacher pitches and reward datasets as JSONL: data build",
            "verbs:\n  build    write catalog, profiles, SFT/NLI/appeal/personalization/relevance JSONL\n"
            "see p4lm data build --help\n" +
                flags_help<pipeline::DataBuildConfig>(),
            run_data}};

}  // namespace
}  // namespace p4lm::cli
