#pragma once
// The exception hierarchy. Every error p4lm throws derives from p4lm::Error, and its message names
// what is at fault (file, line, field, tensor, shape) so a user can fix the input without a debugger.

#include <cstddef>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace p4lm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed a value the function cannot accept (bad option, out-of-range id, ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Tensor shapes that do not fit together.
class ShapeError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// Opening, reading or writing a file failed.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file was read but its content is malformed; the message carries file, line and field.
class ParseError : public Error {
 public:
  ParseError(const std::filesystem::path& file, std::size_t line, std::string_view field,
             std::string_view problem)
      : Error(format(file, line, field, problem)), file_(file), line_(line), field_(field) {}

  const std::filesystem::path& file() const noexcept { return file_; }
  std::size_t line() const noexcept { return line_; }
  const std::string& field() const noexcept { return field_; }

 private:
  static std::string format(const std::filesystem::path& file, std::size_t line, std::string_view field,
                            std::string_view problem) {
    std::ostringstream os;
    os << file.string();
    if (line > 0) os << ':' << line;
    os << ": ";
    if (!field.empty()) os << "field '" << field << "': ";
    os << problem;
    return os.str();
  }
  std::filesystem::path file_;
  std::size_t line_;
  std::string field_;
};

// Bundled or user-supplied data could not be located; the message lists the places searched.
class DataNotFound : public IoError {
 public:
  using IoError::IoError;
};

// Bad command-line usage; tools print the message and exit with status 2.
class UsageError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

// A device runtime (CUDA, cuBLAS) reported a failure; the message names the call and the code.
class BackendError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}
}  // namespace detail

// Throws E with the streamed concatenation of parts: fail<ShapeError>("matmul: ", a, " vs ", b).
template <class E = Error, class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw E(detail::concat(std::forward<Parts>(parts)...));
}

}  // namespace p4lm
