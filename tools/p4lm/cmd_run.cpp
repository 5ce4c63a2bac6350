// `p4lm run`: the main job. Every pipeline stage that exists, in this process, through the library's
// pipeline::run_main (include/p4lm/pipeline/run.hpp: the stages, their artifacts and how each is
// reused when present). --preset picks named defaults (default, paper, tiny); other flags override them.
//   p4lm run                                   the main job (preset default) into runs/main
//   p4lm run --preset tiny --out /tmp/tiny     every stage in seconds (the end-to-end test)

#include <iostream>

#include <p4lm/pipeline/run.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

int run_command(std::span<const std::string> args) {
  pipeline::run_main(pipeline::parse_run_flags(args), std::cout);
  return 0;
}

const Registration run_registration{
    "run", Command{"the main job: every P4LM stage on the bundled data (--preset default | paper | tiny)",
                   pipeline::run_help(), run_command}};

}  // namespace
}  // namespace p4lm::cli
