#include <catch2/catch.hpp>

#include <filesystem>

#include <p4lm/io/atomic_file.hpp>

namespace fs = std::filesystem;

TEST_CASE("write_atomically replaces the file only when the writer succeeds", "[io][atomic]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_atomic";
  fs::remove_all(dir);
  const auto path = dir / "sub" / "file.txt";
  p4lm::io::write_file_atomically(path, "first");
  CHECK(p4lm::io::read_file(path) == "first");

  CHECK_THROWS_AS(p4lm::io::write_atomically(path,
                                             [](std::ostream& out) {
                                               out << "partial";
                                               throw p4lm::Error("writer failed");
                                             }),
                  p4lm::Error);
  CHECK(p4lm::io::read_file(path) == "first");
  // No temporary file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()) == 1);
  CHECK_THROWS_WITH(p4lm::io::read_file(dir / "missing"), Catch::Contains("missing: cannot open"));
  CHECK_THROWS_WITH(p4lm::io::read_file(dir), Catch::Contains("is a folder"));
  fs::remove_all(dir);
}
