// io::CsvReader on arbitrary bytes: header on or off, three delimiters, and a buffer as small as the
// reader allows, so records straddle refills. Every field is also read as a number.
#include <p4lm/io/csv.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const auto path = p4lm_fuzz::write("input.csv", p4lm_fuzz::as_text(data + 1, size - 1));
  p4lm::io::CsvOptions options;
  options.header = (mode & 1) != 0;
  options.check_field_count = (mode & 2) != 0;
  options.delimiter = "\t,;"[(mode >> 2) % 3];
  options.buffer_bytes = (mode & 16) ? 64 : 4096;
  p4lm_fuzz::expect_clean([&] {
    p4lm::io::CsvReader csv(path, options);
    p4lm::io::CsvRow row;
    while (csv.next(row)) {
      for (std::size_t c = 0; c < row.size(); ++c) {
        p4lm_fuzz::expect_clean([&] { (void)csv.get<std::int64_t>(row, c); });
        p4lm_fuzz::expect_clean([&] { (void)csv.get<double>(row, c); });
        p4lm_fuzz::expect_clean([&] { (void)csv.get<float>(row, c); });
      }
    }
  });
  return 0;
}
