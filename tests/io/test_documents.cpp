// io/documents.hpp: a text file is one document, a JSONL file one per line in the named field.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/documents.hpp"

namespace fs = std::filesystem;

TEST_CASE("documents of a text file and of a JSONL file", "[io][documents]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_documents";
  fs::create_directories(dir);
  std::ofstream(dir / "corpus.txt") << "Once upon a time.\n{\"text\": \"not JSON here\"}\n";
  std::ofstream(dir / "corpus.jsonl") << "{\"body\": \"first\"}\n{\"body\": \"second\", \"n\": 2}\n";
  std::vector<std::string> docs;
  const auto collect = [&](const std::string& d) { docs.push_back(d); };

  p4lm::io::for_each_document(dir / "corpus.txt", "body", collect);
  CHECK(docs == std::vector<std::string>{"Once upon a time.\n{\"text\": \"not JSON here\"}\n"});
  docs.clear();
  p4lm::io::for_each_document(dir / "corpus.jsonl", "body", collect);
  CHECK(docs == std::vector<std::string>{"first", "second"});
  fs::remove_all(dir);
}

TEST_CASE("a JSONL document without its field names the file, line and field", "[io][documents]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_documents_bad";
  fs::create_directories(dir);
  std::ofstream(dir / "corpus.jsonl") << "{\"body\": \"first\"}\n{\"body\": 7}\n";
  try {
    p4lm::io::for_each_document(dir / "corpus.jsonl", "body", [](const std::string&) {});
    FAIL("no error");
  } catch (const p4lm::ParseError& e) {
    CHECK(e.file() == dir / "corpus.jsonl");
    CHECK(e.line() == 2);
    CHECK(e.field() == "body");
  }
  fs::remove_all(dir);
}
