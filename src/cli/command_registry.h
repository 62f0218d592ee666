// Subcommands register themselves: each src/cli/cmd_<name>.cpp holds one static
// Registrar, so adding a command touches no other file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace lrc::cli {

// setup adds options to the subcommand and returns the function to run after parsing
// (it returns the process exit code).
using Setup = std::function<std::function<int()>(CLI::App& sub)>;

struct CommandSpec {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<CommandSpec>& command_registry();

// The command line lrc was started with (set by main), for commands that re-run themselves.
std::vector<std::string>& process_args();

struct Registrar {
  Registrar(std::string name, std::string description, Setup setup) {
    command_registry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace lrc::cli
