#pragma once
// The subcommand table of the `p4lm` program. Each pipeline stage registers one Command from its own
// .cpp file (a static Registration), so adding a stage never edits main.cpp.

#include <functional>
#include <map>
#include <span>
#include <string>

namespace p4lm::cli {

struct Command {
  std::string summary;  // one line for `p4lm --help`
  std::string usage;    // full help for `p4lm <name> --help`
  std::function<int(std::span<const std::string> args)> run;
};

inline std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> table;
  return table;
}

struct Registration {
  Registration(std::string name, Command command) {
    commands().emplace(std::move(name), std::move(command));
  }
};

}  // namespace p4lm::cli
