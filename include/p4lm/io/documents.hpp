#pragma once
// The documents of a training corpus: a plain text file is one document; a .jsonl file holds one
// document per line, in the string field `text_field`.
//
//   p4lm::io::for_each_document("stories.jsonl", "text", [&](const std::string& doc) { ... });

#include <cstddef>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"

namespace p4lm::io {

// A line whose field is missing or not a string is a ParseError naming the file, line and field.
template <class F>
void for_each_document(const std::filesystem::path& path, const std::string& text_field, F&& f) {
  if (path.extension() != ".jsonl") return f(read_file(path));
  for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
    if (!j.contains(text_field) || !j[text_field].is_string())
      throw ParseError(path, line, text_field, "missing or not a string");
    f(j[text_field].get<std::string>());
  });
}

}  // namespace p4lm::io
