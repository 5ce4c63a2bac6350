#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <p4lm/core/data_dir.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/csv.hpp>

namespace fs = std::filesystem;
using p4lm::io::CsvOptions;
using p4lm::io::CsvReader;
using p4lm::io::CsvRow;

namespace {

fs::path write_temp(const std::string& name, const std::string& content) {
  const auto path = fs::temp_directory_path() / "p4lm_test_csv" / name;
  p4lm::io::write_file_atomically(path, content);
  return path;
}

struct Parsed {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;
};

Parsed read_all(const fs::path& path, CsvOptions options = {}) {
  CsvReader reader(path, options);
  Parsed out;
  CsvRow row;
  while (reader.next(row)) {
    out.rows.emplace_back(row.begin(), row.end());
    out.lines.push_back(row.line());
  }
  return out;
}

CsvOptions no_header(std::size_t buffer = std::size_t{1} << 20) {
  CsvOptions options;
  options.header = false;
  options.buffer_bytes = buffer;
  return options;
}

using Rows = std::vector<std::vector<std::string>>;

}  // namespace

TEST_CASE("csv: plain records, header and typed fields", "[io][csv]") {
  const auto path = write_temp("plain.csv", "userId,movieId,rating\n1,31,2.5\n2,1029,+3.0\n");
  CsvReader reader(path);
  CHECK(reader.header() == std::vector<std::string>{"userId", "movieId", "rating"});
  CHECK(reader.column("rating") == 2);
  CsvRow row;
  REQUIRE(reader.next(row));
  CHECK(reader.get<std::int64_t>(row, 1) == 31);
  CHECK(reader.get<float>(row, 2) == 2.5f);
  CHECK(row.line() == 2);
  REQUIRE(reader.next(row));
  CHECK(reader.get<double>(row, 2) == 3.0);
  CHECK(row.line() == 3);
  CHECK_FALSE(reader.next(row));
  CHECK_FALSE(reader.next(row));  // stays at the end
}

TEST_CASE("csv: RFC 4180 quoting", "[io][csv]") {
  const std::string content =
      "a,\"b,c\",\"say \"\"hi\"\"\"\n"  // quoted delimiter, doubled quotes
      "\"multi\nline\",x,\"\"\n"        // newline inside quotes, quoted empty field
      ",,\n";                           // three empty fields
  for (std::size_t buffer : {std::size_t{16}, std::size_t{17}, std::size_t{1} << 20}) {
    const auto parsed = read_all(write_temp("quoted.csv", content), no_header(buffer));
    CHECK(parsed.rows == Rows{{"a", "b,c", "say \"hi\""}, {"multi\nline", "x", ""}, {"", "", ""}});
    CHECK(parsed.lines == std::vector<std::size_t>{1, 2, 4});  // the quoted newline counts as a line
  }
}

TEST_CASE("csv: CRLF, BOM, missing final line end, blank lines", "[io][csv]") {
  const auto crlf = read_all(write_temp("crlf.csv", "\xEF\xBB\xBFid,name\r\n1,\"x\r\ny\"\r\n\r\n2,z"));
  CHECK(crlf.rows == Rows{{"1", "x\r\ny"}, {"2", "z"}});
  CHECK(crlf.lines == std::vector<std::size_t>{2, 5});
  CsvReader bom(write_temp("bom.csv", "\xEF\xBB\xBFid,name\n"));
  CHECK(bom.header().front() == "id");  // the BOM is not part of the first column's name
  const auto trailing = read_all(write_temp("trail.csv", "a,b,\n\"q\""), no_header());
  CHECK(trailing.rows == Rows{{"a", "b", ""}, {"q"}});
  const auto empty_quoted_last = read_all(write_temp("eq.csv", "x\n\"\""), no_header());
  CHECK(empty_quoted_last.rows == Rows{{"x"}, {""}});
}

TEST_CASE("csv: records longer than the buffer", "[io][csv]") {
  std::string big(100000, 'x');
  const std::string content = "h\n\"" + big + "\"\"" + big + "\"\n" + big + "\n";
  const auto parsed = read_all(write_temp("long.csv", content), CsvOptions{',', true, true, 64});
  REQUIRE(parsed.rows.size() == 2);
  CHECK(parsed.rows[0][0] == big + "\"" + big);
  CHECK(parsed.rows[1][0] == big);
}

TEST_CASE("csv: malformed input names file, line and field", "[io][csv]") {
  auto error_of = [](const std::string& name, const std::string& content) {
    try {
      read_all(write_temp(name, content));
    } catch (const p4lm::ParseError& e) {
      return std::make_tuple(e.file().filename().string(), e.line(), e.field(), std::string(e.what()));
    }
    FAIL("no ParseError for " << name);
    return std::make_tuple(std::string(), std::size_t{0}, std::string(), std::string());
  };
  {
    const auto [file, line, field, what] = error_of("unterminated.csv", "a,b\n1,2\n3,\"oops\n4,5\n");
    CHECK(file == "unterminated.csv");
    CHECK(line == 3);
    CHECK(field == "b");
    CHECK_THAT(what, Catch::Contains("unterminated.csv:3") && Catch::Contains("unterminated"));
  }
  {
    const auto [file, line, field, what] = error_of("after_quote.csv", "a,b\n\"x\"y,2\n");
    CHECK(line == 2);
    CHECK(field == "a");
    CHECK_THAT(what, Catch::Contains("after closing quote"));
  }
  {
    const auto [file, line, field, what] = error_of("inner_quote.csv", "a,b\n1,2\n1,x\"y\n");
    CHECK(line == 3);
    CHECK(field == "b");
  }
  {
    const auto [file, line, field, what] = error_of("count.csv", "a,b\n1,2\n\"multi\nline\",2\n1,2,3\n");
    CHECK(line == 5);  // the quoted line break moves the record count on by one
    CHECK_THAT(what, Catch::Contains("expected 2 fields, got 3"));
  }
  {
    const auto [file, line, field, what] = error_of("cr.csv", "a,b\n1,2\r3,4\n");
    CHECK(line == 2);
    CHECK_THAT(what, Catch::Contains("carriage return"));
  }
  CHECK_THROWS_AS(read_all(write_temp("empty.csv", "")), p4lm::ParseError);
  CHECK_THROWS_AS(CsvReader(fs::temp_directory_path() / "p4lm_test_csv" / "missing.csv"), p4lm::IoError);
}

TEST_CASE("csv: typed access errors name the column", "[io][csv]") {
  CsvReader reader(write_temp("typed.csv", "userId,rating\n7,4.5\nx,4\n8,\n"));
  CHECK_THROWS_WITH(reader.column("movieId"),
                    Catch::Contains("field 'movieId'") && Catch::Contains("missing column"));
  CsvRow row;
  REQUIRE(reader.next(row));
  CHECK(reader.get<int>(row, 0) == 7);
  REQUIRE(reader.next(row));
  CHECK_THROWS_WITH(reader.get<int>(row, 0), Catch::Contains("typed.csv:3: field 'userId'") &&
                                                 Catch::Contains("expected an integer, got 'x'"));
  CHECK(reader.get<float>(row, 1) == 4.0f);
  REQUIRE(reader.next(row));
  CHECK_THROWS_WITH(reader.get<float>(row, 1), Catch::Contains(":4: field 'rating'"));
  CHECK_THROWS_AS(reader.get<int>(row, 5), p4lm::ParseError);
  int overflow = 0;
  CHECK_FALSE(p4lm::io::parse_number("99999999999", overflow));
}

TEST_CASE("csv: the bundled MovieLens files (CRLF, quoted titles) parse completely", "[io][csv][data]") {
  const auto dir = p4lm::data_path("movielens/ml-latest-small");
  CsvReader movies(dir / "movies.csv");
  CsvRow row;
  std::size_t n = 0, quoted_commas = 0;
  while (movies.next(row)) {
    ++n;
    quoted_commas += row[1].find(',') != std::string_view::npos;
    CHECK(row[2].find('\r') == std::string_view::npos);
  }
  CHECK(n == 9742);
  CHECK(quoted_commas > 0);
  CsvReader overviews(p4lm::data_path("plots/ml-latest-small_overviews.csv"));
  std::size_t with_newline = 0;
  n = 0;
  while (overviews.next(row)) {
    ++n;
    with_newline += row[3].find('\n') != std::string_view::npos;
  }
  CHECK(n == 6581);
  CHECK(with_newline == 4);  // PROVENANCE.md: 4 overviews hold a quoted line break
}
