#pragma once
// Where p4lm finds its bundled data at run time, in this order:
//   1. the P4LM_DATA environment variable (a folder),
//   2. the install prefix's share/p4lm/data (baked in by the CMake target),
//   3. the source tree's data/ (when built in-tree).
// The first folder that exists and holds INDEX.md wins; otherwise DataNotFound lists every place.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "p4lm/core/error.hpp"

namespace p4lm {

struct DataDirCandidate {
  std::string origin;  // "P4LM_DATA", "install prefix", "source tree"
  std::filesystem::path path;
};

inline std::vector<DataDirCandidate> data_dir_candidates() {
  std::vector<DataDirCandidate> candidates;
  if (const char* env = std::getenv("P4LM_DATA"); env != nullptr && *env != '\0')
    candidates.push_back({"P4LM_DATA", env});
#ifdef P4LM_INSTALL_DATA_DIR
  candidates.push_back({"install prefix", P4LM_INSTALL_DATA_DIR});
#endif
#ifdef P4LM_SOURCE_DATA_DIR
  candidates.push_back({"source tree", P4LM_SOURCE_DATA_DIR});
#endif
  return candidates;
}

inline std::filesystem::path data_dir() {
  const auto candidates = data_dir_candidates();
  std::string searched;
  for (const auto& c : candidates) {
    if (std::filesystem::is_regular_file(c.path / "INDEX.md")) return c.path;
    searched += "\n  " + c.origin + ": " + c.path.string();
  }
  fail<DataNotFound>("p4lm data folder not found; searched (in order):",
                     searched.empty() ? std::string("\n  (nowhere: no candidates)") : searched,
                     "\nset P4LM_DATA to the folder that holds p4lm's data/INDEX.md");
}

// The folder a user named (a --data flag), checked, or data_dir() when the name is empty.
inline std::filesystem::path data_dir(const std::filesystem::path& user_choice) {
  if (user_choice.empty()) return data_dir();
  if (!std::filesystem::is_directory(user_choice))
    fail<DataNotFound>("data folder ", user_choice.string(), " does not exist");
  return user_choice;
}

// A file or folder inside the data folder, checked to exist.
inline std::filesystem::path data_path(const std::filesystem::path& relative) {
  const auto path = data_dir() / relative;
  if (!std::filesystem::exists(path)) fail<DataNotFound>("bundled data file missing: ", path.string());
  return path;
}

}  // namespace p4lm
