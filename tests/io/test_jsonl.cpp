#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/jsonl.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

TEST_CASE("jsonl round trip, blank lines and CRLF", "[io][jsonl]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_jsonl";
  fs::remove_all(dir);
  const std::vector<json> records = {{{"text", "line one\nwith newline"}, {"id", 1}},
                                     {{"text", "caf\u00e9 \U0001F600"}, {"ids", {1, 2, 3}}},
                                     json(nullptr),
                                     json::array()};
  p4lm::io::write_jsonl(dir / "a.jsonl", records);
  const auto text = p4lm::io::read_file(dir / "a.jsonl");
  CHECK(std::count(text.begin(), text.end(), '\n') == 4);
  CHECK(p4lm::io::read_jsonl(dir / "a.jsonl") == records);

  p4lm::io::write_file_atomically(dir / "b.jsonl", "{\"a\":1}\r\n\r\n   \n{\"a\":2}");
  std::vector<std::size_t> lines;
  p4lm::io::for_each_jsonl(dir / "b.jsonl", [&](const json& j, std::size_t line) {
    lines.push_back(line);
    CHECK(j["a"].get<int>() == static_cast<int>(lines.size()));
  });
  CHECK(lines == std::vector<std::size_t>{1, 4});
  fs::remove_all(dir);
}

TEST_CASE("jsonl errors name the file and the line", "[io][jsonl]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_jsonl_bad";
  fs::remove_all(dir);
  p4lm::io::write_file_atomically(dir / "bad.jsonl", "{\"text\":\"ok\"}\n\n{\"text\": oops}\n");
  CHECK_THROWS_WITH(p4lm::io::read_jsonl(dir / "bad.jsonl"), Catch::Contains("bad.jsonl:3: invalid JSON"));
  try {
    p4lm::io::read_jsonl(dir / "bad.jsonl");
    FAIL("no exception");
  } catch (const p4lm::ParseError& e) {
    CHECK(e.line() == 3);
    CHECK(e.file() == dir / "bad.jsonl");
  }
  // A record of the wrong shape, detected by the callback, also gets its line.
  p4lm::io::write_file_atomically(dir / "shape.jsonl", "{\"text\":\"ok\"}\n{\"text\":5}\n");
  CHECK_THROWS_WITH(
      p4lm::io::for_each_jsonl(dir / "shape.jsonl",
                               [](const json& j, std::size_t) { (void)j.at("text").get<std::string>(); }),
      Catch::Contains("shape.jsonl:2: unexpected record"));
  CHECK_THROWS_AS(p4lm::io::read_jsonl(dir / "missing.jsonl"), p4lm::IoError);
  // Writing invalid UTF-8 fails and leaves no file.
  CHECK_THROWS_AS(p4lm::io::write_jsonl(dir / "w.jsonl", std::vector<json>{{{"t", "\xff"}}}),
                  p4lm::InvalidArgument);
  CHECK_FALSE(fs::exists(dir / "w.jsonl"));
  // Streams work too, with the origin named.
  std::istringstream in("[1]\n[2\n");
  CHECK_THROWS_WITH(p4lm::io::for_each_jsonl(in, "<stdin>", [](const json&, std::size_t) {}),
                    Catch::Contains("<stdin>:2"));
  fs::remove_all(dir);
}
