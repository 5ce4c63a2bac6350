#pragma once
// Metrics of a long job, one record per step, written as JSON lines and/or CSV that a plotting tool
// reads directly. Files are appended to (so a resumed run continues its curve) and flushed per
// record, so a crash loses at most the record being written. A job that resumes from a checkpoint
// written at step k first calls MetricsSink::drop_after(k, ...): the records of steps after k were
// written by the run that died and will be recorded again.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"

namespace p4lm {

class MetricsSink {
 public:
  // Either path may be empty to skip that format. CSV columns are fixed by the first record; a
  // later record with other keys is an error (the CSV would be misaligned), JSONL has no such limit.
  explicit MetricsSink(std::filesystem::path jsonl_path = {}, std::filesystem::path csv_path = {})
      : jsonl_path_(std::move(jsonl_path)), csv_path_(std::move(csv_path)) {
    if (!jsonl_path_.empty()) open(jsonl_, jsonl_path_);
    if (!csv_path_.empty()) {
      const bool existing = std::filesystem::exists(csv_path_) && std::filesystem::file_size(csv_path_) > 0;
      if (existing) columns_ = read_csv_header(csv_path_);
      open(csv_, csv_path_);
    }
  }

  // Removes every record whose step is > `step` from the given files (missing files are fine), so a
  // job resumed at `step` does not append a second copy of what the killed run logged after it. Each
  // file is replaced atomically: a crash leaves the old or the new one.
  static void drop_after(long step, const std::filesystem::path& jsonl_path,
                         const std::filesystem::path& csv_path) {
    auto rewrite = [&](const std::filesystem::path& path, bool csv) {
      if (path.empty() || !std::filesystem::exists(path)) return;
      std::ifstream in(path);
      std::string kept, line;
      bool header = csv, dropped = false;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (header) {
          kept += line + '\n';
          header = false;
          continue;
        }
        long at = 0;
        try {
          at = csv ? std::stol(line.substr(0, line.find(',')))
                   : nlohmann::json::parse(line).at("step").get<long>();
        } catch (const std::exception&) {
          fail<IoError>(path.string(), ": metrics line without a step: ", line);
        }
        if (at <= step)
          kept += line + '\n';
        else
          dropped = true;
      }
      in.close();
      if (!dropped) return;
      io::write_file_atomically(path, kept);
    };
    rewrite(jsonl_path, false);
    rewrite(csv_path, true);
  }

  // Records one step. Values that are NaN or infinite are written as null in JSONL, empty in CSV.
  void record(long step, const std::map<std::string, double>& values) {
    if (jsonl_.is_open()) {
      nlohmann::json row;
      row["step"] = step;
      for (const auto& [key, value] : values) {
        row[key] = std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
      }
      jsonl_ << row.dump() << '\n';
      jsonl_.flush();
    }
    if (csv_.is_open()) {
      if (!columns_) {
        columns_.emplace();
        csv_ << "step";
        for (const auto& [key, value] : values) {
          columns_->push_back(key);
          csv_ << ',' << key;
        }
        csv_ << '\n';
      }
      if (columns_->size() != values.size()) mismatch(values);
      csv_ << step;
      for (const auto& key : *columns_) {
        const auto it = values.find(key);
        if (it == values.end()) mismatch(values);
        csv_ << ',';
        if (std::isfinite(it->second)) csv_ << it->second;
      }
      csv_ << '\n';
      csv_.flush();
    }
  }

 private:
  static void open(std::ofstream& stream, const std::filesystem::path& path) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    stream.open(path, std::ios::app);
    if (!stream) fail<IoError>(path.string(), ": cannot open metrics file for appending");
    stream.precision(9);
  }

  static std::vector<std::string> read_csv_header(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::string header;
    std::getline(in, header);
    std::vector<std::string> columns;
    std::size_t start = 0;
    while (start <= header.size()) {
      const auto comma = header.find(',', start);
      const auto end = comma == std::string::npos ? header.size() : comma;
      columns.push_back(header.substr(start, end - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (columns.empty() || columns.front() != "step")
      fail<IoError>(path.string(), ": existing metrics file does not start with a 'step' column");
    columns.erase(columns.begin());
    return columns;
  }

  [[noreturn]] void mismatch(const std::map<std::string, double>& values) const {
    std::string keys;
    for (const auto& [key, value] : values) keys += (keys.empty() ? "" : ",") + key;
    std::string expected;
    for (const auto& key : *columns_) expected += (expected.empty() ? "" : ",") + key;
    fail<InvalidArgument>(csv_path_.string(), ": metrics record has keys {", keys,
                          "} but the CSV columns are {", expected, "}");
  }

  std::filesystem::path jsonl_path_, csv_path_;
  std::ofstream jsonl_, csv_;
  std::optional<std::vector<std::string>> columns_;
};

}  // namespace p4lm
