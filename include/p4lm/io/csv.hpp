#pragma once
// A streaming CSV reader (RFC 4180): quoted fields with delimiters, doubled quotes and line breaks
// inside, LF or CRLF line ends, an optional UTF-8 byte-order mark, a last line with or without a line
// end. Memory stays bounded by the buffer (1 MiB by default) plus the longest record, so a 700 MB
// ratings file streams through in a few seconds.
//
//   p4lm::io::CsvReader csv("ratings.csv");               // reads the header line
//   const auto user = csv.column("userId");               // ParseError if the header lacks it
//   p4lm::io::CsvRow row;
//   while (csv.next(row)) {
//     const auto id = csv.get<std::int64_t>(row, user);   // ParseError names file, line, field
//   }
//
// Deviations from the RFC, chosen for real files: blank lines (no characters at all) are skipped;
// a quote inside an unquoted field and text after a closing quote are errors, not guessed at.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "p4lm/core/error.hpp"

namespace p4lm::io {

// One record. Views stay valid until the next call to CsvReader::next with this row.
class CsvRow {
 public:
  std::size_t size() const noexcept { return views_.size(); }
  std::string_view operator[](std::size_t i) const noexcept { return views_[i]; }
  // Line (1-based) of the file on which the record starts; a record with quoted line breaks spans more.
  std::size_t line() const noexcept { return line_; }
  auto begin() const noexcept { return views_.begin(); }
  auto end() const noexcept { return views_.end(); }

 private:
  friend class CsvReader;
  struct Span {
    bool in_scratch;  // unescaped quoted field (copied) or a slice of the reader's buffer
    std::size_t offset, length;
  };
  std::vector<Span> spans_;
  std::vector<std::string_view> views_;
  std::string scratch_;
  std::size_t line_ = 0;
};

struct CsvOptions {
  char delimiter = ',';
  bool header = true;             // the first record names the columns
  bool check_field_count = true;  // with a header: every record has as many fields as the header
  std::size_t buffer_bytes = std::size_t{1} << 20;
};

// Parses a whole field as a number; false if it is empty, has other characters, or overflows.
template <class T>
bool parse_number(std::string_view text, T& value) {
  static_assert(std::is_arithmetic_v<T>, "parse_number: arithmetic types only");
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = first + text.size();
  if constexpr (std::is_floating_point_v<T>) {
    if (*first == '+') ++first;  // from_chars rejects a leading '+', which some writers emit
  }
  const auto [ptr, ec] = std::from_chars(first, last, value);
  return ec == std::errc() && ptr == last;
}

class CsvReader {
 public:
  explicit CsvReader(std::filesystem::path path, CsvOptions options = {})
      : path_(std::move(path)), options_(options), file_(std::fopen(path_.c_str(), "rb"), &std::fclose) {
    if (!file_) fail<IoError>(path_.string(), ": cannot open for reading: ", std::strerror(errno));
    if (options_.buffer_bytes < 16) options_.buffer_bytes = 16;
    buffer_.resize(options_.buffer_bytes);
    fill();
    if (end_ >= 3 && std::memcmp(buffer_.data(), "\xEF\xBB\xBF", 3) == 0) begin_ = 3;
    if (options_.header) {
      CsvRow row;
      if (!next(row)) throw ParseError(path_, 1, "", "empty file: expected a header line");
      header_.assign(row.begin(), row.end());
    }
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  const std::vector<std::string>& header() const noexcept { return header_; }

  // Index of a named column; ParseError (line 1) if the header does not have it.
  std::size_t column(std::string_view name) const {
    const auto it = std::find(header_.begin(), header_.end(), name);
    if (it == header_.end()) {
      std::string have;
      for (const auto& h : header_) have += (have.empty() ? "" : ",") + h;
      throw ParseError(path_, 1, name, "missing column (header is '" + have + "')");
    }
    return static_cast<std::size_t>(it - header_.begin());
  }
  bool has_column(std::string_view name) const {
    return std::find(header_.begin(), header_.end(), name) != header_.end();
  }

  // Reads the next record into row; false at the end of the file.
  bool next(CsvRow& row) {
    for (;;) {
      const Status status = parse(row);
      if (status == Status::record) {
        if (options_.header && options_.check_field_count && !header_.empty() && row.size() != header_.size())
          throw ParseError(
              path_, row.line(), "",
              "expected " + std::to_string(header_.size()) + " fields, got " + std::to_string(row.size()));
        return true;
      }
      if (status == Status::blank) continue;
      if (status == Status::end) return false;
      refill();  // Status::need_more: the record runs past the buffered bytes
    }
  }

  // The field as T; ParseError naming file, line and column (header name or number) if it is not one.
  template <class T>
  T get(const CsvRow& row, std::size_t col) const {
    if (col >= row.size()) throw ParseError(path_, row.line(), field_name(col), "missing field");
    if constexpr (std::is_same_v<T, std::string>) {
      return std::string(row[col]);
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      return row[col];
    } else {
      T value{};
      if (!parse_number(row[col], value))
        throw ParseError(path_, row.line(), field_name(col),
                         std::string("expected ") + (std::is_integral_v<T> ? "an integer" : "a number") +
                             ", got '" + std::string(row[col]) + "'");
      return value;
    }
  }

  // Header name of a column, or "column N" (1-based) without a header.
  std::string field_name(std::size_t col) const {
    if (col < header_.size()) return header_[col];
    return "column " + std::to_string(col + 1);
  }

  // Bytes consumed so far (for progress over a file of known size).
  std::uint64_t bytes_read() const noexcept { return consumed_before_ + begin_; }

 private:
  enum class Status { record, blank, need_more, end };

  void fill() {
    const std::size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_.get());
    if (got == 0) {
      if (std::ferror(file_.get())) fail<IoError>(path_.string(), ": read failed");
      eof_ = true;
    }
    end_ += got;
  }

  // Moves the unconsumed tail to the front (growing the buffer for a record longer than it) and reads.
  void refill() {
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      consumed_before_ += begin_;
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    fill();
  }

  [[noreturn]] void error(const CsvRow& row, std::size_t field, std::size_t extra_lines,
                          std::string_view problem) const {
    throw ParseError(path_, row.line_ + extra_lines, field_name(field), problem);
  }

  // Parses one record starting at begin_. need_more if the buffered bytes end inside it and the file
  // has more (the caller refills and the record is parsed again from its start).
  Status parse(CsvRow& row) {
    row.spans_.clear();
    row.scratch_.clear();
    row.line_ = line_;
    const char* const base = buffer_.data();
    const char* p = base + begin_;
    const char* const e = base + end_;
    const char delim = options_.delimiter;
    const bool at_eof = eof_;
    if (p == e) return at_eof ? Status::end : Status::need_more;
    std::size_t newlines = 0;  // line breaks inside quoted fields of this record
    bool any_quoted = false;
    for (;;) {
      const std::size_t field = row.spans_.size();
      if (p < e && *p == '"') {
        any_quoted = true;
        ++p;
        const std::size_t start = row.scratch_.size();
        for (;;) {
          const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(e - p)));
          if (q == nullptr) {
            if (!at_eof) return Status::need_more;
            error(row, field, 0, "unterminated quoted field (opening quote never closed)");
          }
          newlines += static_cast<std::size_t>(std::count(p, q, '\n'));
          row.scratch_.append(p, q);
          if (q + 1 == e && !at_eof) return Status::need_more;
          if (q + 1 < e && q[1] == '"') {
            row.scratch_.push_back('"');
            p = q + 2;
            continue;
          }
          p = q + 1;
          break;
        }
        row.spans_.push_back({true, start, row.scratch_.size() - start});
        if (p < e && *p != delim && *p != '\n' && *p != '\r')
          error(row, field, newlines, std::string("unexpected character '") + *p + "' after closing quote");
      } else {
        const char* s = p;
        while (p < e && *p != delim && *p != '\n' && *p != '\r' && *p != '"') ++p;
        if (p < e && *p == '"') error(row, field, newlines, "quote inside an unquoted field");
        row.spans_.push_back({false, static_cast<std::size_t>(s - base), static_cast<std::size_t>(p - s)});
      }
      // p is at a delimiter, a line end, or the end of the buffered bytes.
      if (p == e) {
        if (!at_eof) return Status::need_more;
        break;
      }
      if (*p == delim) {
        ++p;
        continue;
      }
      if (*p == '\r') {
        if (p + 1 == e && !at_eof) return Status::need_more;
        if (p + 1 == e || p[1] != '\n')
          error(row, field, newlines, "carriage return not followed by line feed");
        ++p;
      }
      ++p;  // the '\n'
      ++newlines;
      break;
    }
    begin_ = static_cast<std::size_t>(p - base);
    line_ += newlines;
    if (!any_quoted && row.spans_.size() == 1 && row.spans_[0].length == 0) return Status::blank;
    row.views_.resize(row.spans_.size());
    for (std::size_t i = 0; i < row.spans_.size(); ++i) {
      const auto& s = row.spans_[i];
      row.views_[i] = std::string_view((s.in_scratch ? row.scratch_.data() : base) + s.offset, s.length);
    }
    return Status::record;
  }

  std::filesystem::path path_;
  CsvOptions options_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0;
  std::uint64_t consumed_before_ = 0;
  bool eof_ = false;
  std::size_t line_ = 1;
  std::vector<std::string> header_;
};

}  // namespace p4lm::io
