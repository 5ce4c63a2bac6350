// p4lm: command-line entry point. Dispatches to the registered subcommands (see command.hpp).
// Exit codes: 0 success, 1 runtime failure (message on stderr), 2 bad usage.

#include <exception>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include <p4lm/p4lm.hpp>

#include "p4lm/command.hpp"

namespace {

void print_help(std::ostream& out) {
  out << "p4lm " << p4lm::version_string
      << ": factual and personalized movie pitches from language models and RL\n\n"
         "usage: p4lm <command> [--option value ...]\n"
         "       p4lm <command> --help\n"
         "       p4lm --version\n\ncommands:\n";
  std::size_t width = 0;
  for (const auto& [name, command] : p4lm::cli::commands()) width = std::max(width, name.size());
  for (const auto& [name, command] : p4lm::cli::commands())
    out << "  " << name << std::string(width + 2 - name.size(), ' ') << command.summary << '\n';
}

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun: MPI for the data-parallel Trainer (docs/distributed.md); started alone: nothing.
  p4lm::dist::Environment mpi(argc, argv);
  // Every rank runs the same command; rank 0 alone prints its results (errors come from any rank).
  if (!p4lm::dist::world().is_root()) std::cout.setstate(std::ios::badbit);
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    print_help(std::cerr);
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help(std::cout);
    return 0;
  }
  if (args[0] == "--version") {
    std::cout << "p4lm " << p4lm::version_string << '\n';
    return 0;
  }
  const auto& table = p4lm::cli::commands();
  const auto it = table.find(args[0]);
  if (it == table.end()) {
    std::cerr << "p4lm: unknown command '" << args[0] << "' (see p4lm --help)\n";
    return 2;
  }
  const std::span<const std::string> rest(args.data() + 1, args.size() - 1);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << "usage: p4lm " << it->first << " [options]\n"
              << it->second.summary << "\n\n"
              << it->second.usage;
    return 0;
  }
  try {
    return it->second.run(rest);
  } catch (const p4lm::UsageError& e) {
    std::cerr << "p4lm " << it->first << ": " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "p4lm " << it->first << ": error: " << e.what() << '\n';
    if (p4lm::dist::world().distributed()) mpi.abort(1);  // the other ranks would wait forever
    return 1;
  }
}
