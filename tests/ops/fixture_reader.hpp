#pragma once
// Reader for the PyTorch reference fixtures written by scripts/fixtures/make_ops_fixtures.py
// (test-only). Format, little-endian:
//   "P4LMFIX\0" (8 bytes), u32 version (= 1), u32 number of arrays, then per array:
//   u32 name length, name bytes (UTF-8, no terminator), u32 rank, rank x u64 dims,
//   prod(dims) x f64 values (row-major).
// Every array is float64; integer data (positions, lengths, targets) is stored exactly as float64.

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <p4lm/core/error.hpp>
#include <p4lm/core/tensor.hpp>

namespace p4lm::test {

class Fixture {
 public:
  static constexpr std::uint32_t version = 1;

  struct Array {
    Shape shape;
    std::vector<double> values;
  };

  static Fixture load(const std::filesystem::path& path) {
    static_assert(std::endian::native == std::endian::little, "fixtures are little-endian");
    std::ifstream in(path, std::ios::binary);
    if (!in)
      fail<IoError>("cannot open fixture ", path.string(), " (run scripts/fixtures/make_ops_fixtures.py)");
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Fixture f;
    f.path_ = path;
    std::size_t at = 0;
    auto take = [&](void* dst, std::size_t n, const char* what) {
      if (bytes.size() - at < n)
        throw ParseError(path, 0, what, "file truncated at byte " + std::to_string(at));
      if (n == 0) return;  // a rank-0 array has no dims; memcpy from/to null is UB even for 0 bytes
      std::memcpy(dst, bytes.data() + at, n);
      at += n;
    };
    char magic[8];
    take(magic, 8, "magic");
    if (std::memcmp(magic, "P4LMFIX\0", 8) != 0) throw ParseError(path, 0, "magic", "not a p4lm fixture");
    std::uint32_t file_version = 0, count = 0;
    take(&file_version, 4, "version");
    if (file_version != version)
      throw ParseError(
          path, 0, "version",
          "version " + std::to_string(file_version) + ", reader knows " + std::to_string(version));
    take(&count, 4, "count");
    for (std::uint32_t a = 0; a < count; ++a) {
      std::uint32_t name_length = 0, rank = 0;
      take(&name_length, 4, "name length");
      std::string name(name_length, '\0');
      take(name.data(), name_length, "name");
      take(&rank, 4, "rank");
      if (rank > Shape::max_rank) throw ParseError(path, 0, name, "rank " + std::to_string(rank) + " > 4");
      std::vector<std::uint64_t> dims(rank);
      take(dims.data(), 8 * rank, "dims");
      Array array;
      array.shape = Shape::from(dims);
      array.values.resize(array.shape.numel());
      take(array.values.data(), 8 * array.values.size(), name.c_str());
      f.arrays_.emplace(std::move(name), std::move(array));
    }
    if (at != bytes.size()) throw ParseError(path, 0, "", "trailing bytes after the last array");
    return f;
  }

  // Fixtures live in tests/fixtures/ops/<name>.bin.
  static Fixture ops(const std::string& name) {
    return load(std::filesystem::path(P4LM_TEST_FIXTURES_DIR) / "ops" / (name + ".bin"));
  }

  bool has(const std::string& name) const { return arrays_.count(name) != 0; }
  const Array& at(const std::string& name) const {
    const auto it = arrays_.find(name);
    if (it == arrays_.end()) fail<InvalidArgument>("fixture ", path_.string(), " has no array '", name, "'");
    return it->second;
  }
  template <class T = double>
  CpuTensor<T> tensor(const std::string& name) const {
    const Array& a = at(name);
    CpuTensor<T> t(a.shape);
    for (std::size_t i = 0; i < a.values.size(); ++i) t.data()[i] = static_cast<T>(a.values[i]);
    return t;
  }
  double scalar(const std::string& name) const {
    const Array& a = at(name);
    if (a.values.size() != 1) fail<ShapeError>("fixture array '", name, "' is not a scalar: ", a.shape);
    return a.values[0];
  }

 private:
  std::filesystem::path path_;
  std::map<std::string, Array> arrays_;
};

}  // namespace p4lm::test
