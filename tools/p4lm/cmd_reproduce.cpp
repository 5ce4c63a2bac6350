// `p4lm reproduce table1|table3|warmstart|overopt|all --preset default --seeds 1,2,3 --out DIR`: the
// paper's experiments as pipeline runs per seed, aggregated into tables and plots
// (include/p4lm/pipeline/reproduce.hpp; docs/results.md shows what each produces).
//   p4lm reproduce table1 --preset tiny --seeds 1,2 --out /tmp/repro     every run in a minute or two

#include <iostream>
#include <string>
#include <vector>

#include <p4lm/pipeline/reproduce.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

int reproduce_main(std::span<const std::string> args) {
  // The experiment may come first, without a flag: `p4lm reproduce table1 --seeds 1,2`.
  std::vector<std::string> flags(args.begin(), args.end());
  std::string what;
  if (!flags.empty() && !flags.front().starts_with("--")) {
    what = flags.front();
    flags.erase(flags.begin());
  }
  auto c = parse_flags<pipeline::ReproduceConfig>(flags);
  if (!what.empty()) *c.what = what;
  (void)pipeline::preset(*c.preset);  // a typo before any run starts
  (void)pipeline::parse_seeds(*c.seeds);
  pipeline::reproduce(c, std::cout);
  return 0;
}

const Registration reproduce_registration{
    "reproduce", Command{"the paper's tables and plots (table1, table3, warmstart, overopt, all) over seeds",
                         "usage: p4lm reproduce [table1|table3|warmstart|overopt|all] [options]\n" +
                             flags_help<pipeline::ReproduceConfig>(),
                         reproduce_main}};

}  // namespace
}  // namespace p4lm::cli
