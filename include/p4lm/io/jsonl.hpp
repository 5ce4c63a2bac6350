#pragma once
// JSON Lines: one JSON value per line. Every p4lm dataset (pitches, labels, metrics) is JSONL so any
// tool, or any LLM's output, can stand in for p4lm's own.
//
//   p4lm::io::for_each_jsonl("pitches.jsonl", [](const nlohmann::json& j, std::size_t line) { ... });
//   auto records = p4lm::io::read_jsonl("pitches.jsonl");
//   p4lm::io::write_jsonl("out.jsonl", records);                 // atomic
//
// Blank lines are skipped, a trailing "\r" is dropped. A line that is not JSON, or a record the
// callback cannot use (nlohmann type errors such as j["text"] not being a string), throws
// p4lm::ParseError naming the file and the 1-based line number.

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <istream>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"

namespace p4lm::io {

// Streams `in`; `origin` names the source in errors. f(const nlohmann::json&, std::size_t line).
template <class F>
void for_each_jsonl(std::istream& in, const std::filesystem::path& origin, F&& f) {
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(origin, number, "", std::string("invalid JSON: ") + e.what());
    }
    try {
      f(std::as_const(value), number);
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(origin, number, "", std::string("unexpected record: ") + e.what());
    }
  }
  if (in.bad()) fail<IoError>(origin.string(), ": read failed");
}

template <class F>
void for_each_jsonl(const std::filesystem::path& path, F&& f) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  for_each_jsonl(in, path, std::forward<F>(f));
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> records;
  for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t) { records.push_back(j); });
  return records;
}

// One line for a value: compact, no embedded newline (JSON escapes them), invalid UTF-8 refused.
inline std::string jsonl_line(const nlohmann::json& value) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception& e) {
    fail<InvalidArgument>("jsonl: record cannot be written: ", e.what());
  }
}

// Writes atomically: emit(const nlohmann::json&) may be called any number of times by `produce`;
// the file appears only if produce returns normally.
template <class Producer>
void write_jsonl_with(const std::filesystem::path& path, Producer&& produce) {
  write_atomically(path, [&](std::ostream& out) {
    std::forward<Producer>(produce)([&](const nlohmann::json& value) { out << jsonl_line(value) << '\n'; });
  });
}

inline void write_jsonl(const std::filesystem::path& path, std::span<const nlohmann::json> records) {
  write_jsonl_with(path, [&](auto&& emit) {
    for (const auto& r : records) emit(r);
  });
}

}  // namespace p4lm::io
