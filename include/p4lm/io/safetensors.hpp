#pragma once
// The safetensors checkpoint format (Hugging Face): an 8-byte little-endian header length N, N bytes
// of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the tensor bytes, offsets relative to the end of the header.
//
//   auto file = p4lm::io::SafetensorsFile::open("model.safetensors");
//   std::vector<float> wte = file.read_f32("wte.weight");        // F16/BF16/F64 converted
//   const auto& view = file.at("wte.weight");                    // dtype, shape, raw bytes
//
//   p4lm::io::save_safetensors("out.safetensors",
//       {p4lm::io::tensor_f32("w", {2, 3}, values)}, {{"format", "pt"}});
//
// Independent of p4lm's Tensor type on purpose: views are (dtype, shape, bytes) and the model code
// adapts them. The reader validates everything the Rust reference does (header bounds, known dtype,
// byte size = shape x dtype, offsets contiguous from 0 and covering the data exactly) and names the
// file and tensor in every error. The writer is deterministic (tensors sorted by name, header padded
// to 8 bytes with spaces), so save -> load -> save gives identical bytes.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/finite.hpp"

namespace p4lm::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; p4lm assumes a LE host");

enum class Dtype : std::uint8_t { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64 };

inline constexpr std::pair<Dtype, std::string_view> dtype_names[] = {
    {Dtype::BOOL, "BOOL"}, {Dtype::U8, "U8"},   {Dtype::I8, "I8"},     {Dtype::U16, "U16"},
    {Dtype::I16, "I16"},   {Dtype::F16, "F16"}, {Dtype::BF16, "BF16"}, {Dtype::U32, "U32"},
    {Dtype::I32, "I32"},   {Dtype::F32, "F32"}, {Dtype::U64, "U64"},   {Dtype::I64, "I64"},
    {Dtype::F64, "F64"}};

constexpr std::string_view dtype_name(Dtype d) noexcept {
  for (const auto& [dtype, name] : dtype_names)
    if (dtype == d) return name;
  return "?";
}

constexpr std::size_t dtype_size(Dtype d) noexcept {
  switch (d) {
    case Dtype::BOOL:
    case Dtype::U8:
    case Dtype::I8:
      return 1;
    case Dtype::U16:
    case Dtype::I16:
    case Dtype::F16:
    case Dtype::BF16:
      return 2;
    case Dtype::U32:
    case Dtype::I32:
    case Dtype::F32:
      return 4;
    default:
      return 8;
  }
}

constexpr std::optional<Dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& [dtype, n] : dtype_names)
    if (n == name) return dtype;
  return std::nullopt;
}

// IEEE binary16 and bfloat16 <-> float. Half conversion handles subnormals, infinities and NaN;
// float -> half/bf16 rounds to nearest even.
inline float f16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while ((mant & 0x400u) == 0) mant <<= 1, --exp;
    bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

inline std::uint16_t float_to_f16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));  // NaN
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < half the smallest subnormal
    const std::uint32_t e = abs >> 23, m = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // m * 2^(e-150) / 2^-24 = m >> (126 - e)
    std::uint32_t half = m >> shift;
    const std::uint32_t rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = ((abs >> 13) - (112u << 10));
  const std::uint32_t rest = abs & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

inline float bf16_to_float(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

inline std::uint16_t float_to_bf16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

// One tensor inside a loaded file: the bytes stay owned by the SafetensorsFile.
struct SafetensorsView {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;

  std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (const auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

class SafetensorsFile {
 public:
  // Largest JSON header accepted (the Rust reference uses the same 100 MB bound).
  static constexpr std::uint64_t max_header_bytes = 100'000'000;

  static SafetensorsFile open(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail<IoError>(path.string(), ": cannot open for reading");
    const auto end = in.tellg();
    // A folder opens as a stream on Linux and reports a bogus size: refuse anything but a file.
    if (end < 0 || !std::filesystem::is_regular_file(path))
      fail<IoError>(path.string(), ": not a regular file");
    const auto size = static_cast<std::size_t>(end);
    std::vector<std::byte> bytes(size);
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
      fail<IoError>(path.string(), ": read failed");
    return parse(std::move(bytes), path);
  }

  // Parses an in-memory file; `origin` names it in error messages.
  static SafetensorsFile parse(std::vector<std::byte> bytes,
                               const std::filesystem::path& origin = "<memory>") {
    SafetensorsFile file;
    file.path_ = origin;
    file.bytes_ = std::move(bytes);
    file.index();
    return file;
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const std::vector<SafetensorsView>& tensors() const noexcept { return tensors_; }  // sorted by name
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& t : tensors_) out.push_back(t.name);
    return out;
  }
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  const SafetensorsView& at(std::string_view name) const {
    if (const auto* t = find(name)) return *t;
    throw ParseError(path_, 0, name,
                     "no such tensor in the file (" + std::to_string(tensors_.size()) + " tensors)");
  }

  // The tensor's values as float (F32, F16, BF16 and F64 are converted; integer dtypes are refused).
  // A NaN or infinite value is a ParseError naming the tensor (io/finite.hpp): weights must be finite.
  // Pass finite = false for data that may hold them on purpose (masks of -inf, format tests).
  std::vector<float> read_f32(std::string_view name, bool finite = true) const {
    const auto& t = at(name);
    std::vector<float> out(t.numel());
    const auto* src = t.data.data();
    switch (t.dtype) {
      case Dtype::F32:
        if (!out.empty()) std::memcpy(out.data(), src, out.size() * 4);  // empty tensors have no data pointer
        break;
      case Dtype::F16:
      case Dtype::BF16:
        for (std::size_t i = 0; i < out.size(); ++i) {
          std::uint16_t h;
          std::memcpy(&h, src + 2 * i, 2);
          out[i] = t.dtype == Dtype::F16 ? f16_to_float(h) : bf16_to_float(h);
        }
        break;
      case Dtype::F64:
        for (std::size_t i = 0; i < out.size(); ++i) {
          double d;
          std::memcpy(&d, src + 8 * i, 8);
          out[i] = static_cast<float>(d);
        }
        break;
      default:
        throw ParseError(path_, 0, name,
                         "dtype " + std::string(dtype_name(t.dtype)) + " cannot be read as float");
    }
    if (finite) require_finite<float>(out, path_, name);
    return out;
  }

  // The tensor's values as int64 (any integer or BOOL dtype).
  std::vector<std::int64_t> read_i64(std::string_view name) const {
    const auto& t = at(name);
    std::vector<std::int64_t> out(t.numel());
    const auto* src = t.data.data();
    auto load = [&]<class T>(T) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        T v;
        std::memcpy(&v, src + sizeof(T) * i, sizeof(T));
        out[i] = static_cast<std::int64_t>(v);
      }
    };
    switch (t.dtype) {
      case Dtype::BOOL:
      case Dtype::U8:
        load(std::uint8_t{});
        break;
      case Dtype::I8:
        load(std::int8_t{});
        break;
      case Dtype::U16:
        load(std::uint16_t{});
        break;
      case Dtype::I16:
        load(std::int16_t{});
        break;
      case Dtype::U32:
        load(std::uint32_t{});
        break;
      case Dtype::I32:
        load(std::int32_t{});
        break;
      case Dtype::I64:
        load(std::int64_t{});
        break;
      default:
        throw ParseError(path_, 0, name,
                         "dtype " + std::string(dtype_name(t.dtype)) + " cannot be read as integers");
    }
    return out;
  }

  // Shape checked against what the caller expects: ShapeError naming file, tensor and both shapes.
  const SafetensorsView& expect(std::string_view name, std::span<const std::int64_t> shape) const {
    const auto& t = at(name);
    if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end()))
      fail<ShapeError>(path_.string(), ": tensor '", name, "': shape ", shape_text(t.shape), ", expected ",
                       shape_text(shape));
    return t;
  }

  static std::string shape_text(std::span<const std::int64_t> shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

 private:
  const SafetensorsView* find(std::string_view name) const noexcept {
    const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                     [](const SafetensorsView& t, std::string_view n) { return t.name < n; });
    return it != tensors_.end() && it->name == name ? &*it : nullptr;
  }

  [[noreturn]] void bad(std::string_view tensor, const std::string& problem) const {
    throw ParseError(path_, 0, tensor, problem);
  }

  void index() {
    const std::size_t size = bytes_.size();
    if (size < 8) bad("", "file has " + std::to_string(size) + " bytes, less than the 8-byte header length");
    std::uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    if (n > max_header_bytes) bad("", "header length " + std::to_string(n) + " exceeds the 100 MB limit");
    if (n > size - 8)
      bad("", "header length " + std::to_string(n) + " runs past the end of the file (" +
                  std::to_string(size) + " bytes): truncated?");
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data()) + 8,
                                static_cast<std::size_t>(n));
    if (text.empty() || text.front() != '{') bad("", "header is not a JSON object");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      bad("", std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) bad("", "header is not a JSON object");
    const std::size_t data_begin = 8 + static_cast<std::size_t>(n), data_size = size - data_begin;
    std::vector<std::pair<std::uint64_t, std::size_t>> order;  // (begin, tensor index)
    std::vector<std::uint64_t> ends;
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") {
        if (!info.is_object()) bad(name, "__metadata__ must be an object of strings");
        for (const auto& [key, value] : info.items()) {
          if (!value.is_string()) bad(name, "metadata value of '" + key + "' is not a string");
          metadata_.emplace(key, value.get<std::string>());
        }
        continue;
      }
      if (!info.is_object()) bad(name, "entry is not an object");
      const auto dt = info.find("dtype"), sh = info.find("shape"), off = info.find("data_offsets");
      if (dt == info.end() || sh == info.end() || off == info.end())
        bad(name, "entry needs dtype, shape and data_offsets");
      if (!dt->is_string()) bad(name, "dtype is not a string");
      const auto dtype = parse_dtype(dt->get<std::string>());
      if (!dtype) bad(name, "unknown dtype '" + dt->get<std::string>() + "'");
      SafetensorsView view;
      view.name = name;
      view.dtype = *dtype;
      if (!sh->is_array()) bad(name, "shape is not an array");
      std::uint64_t numel = 1;
      for (const auto& d : *sh) {
        if (!d.is_number_unsigned()) bad(name, "shape has a negative or non-integer dimension");
        const auto dim = d.get<std::uint64_t>();
        if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 16 / dim)
          bad(name, "shape overflows");
        numel *= dim;
        view.shape.push_back(static_cast<std::int64_t>(dim));
      }
      if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
          !(*off)[1].is_number_unsigned())
        bad(name, "data_offsets must be two non-negative integers");
      const auto begin = (*off)[0].get<std::uint64_t>(), end = (*off)[1].get<std::uint64_t>();
      if (end < begin)
        bad(name, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
      if (end > data_size)
        bad(name, "data_offsets end " + std::to_string(end) + " is past the data section (" +
                      std::to_string(data_size) + " bytes): truncated file?");
      if (end - begin != numel * dtype_size(*dtype))
        bad(name, "data_offsets span " + std::to_string(end - begin) + " bytes but shape " +
                      shape_text(view.shape) + " x " + std::string(dtype_name(*dtype)) + " needs " +
                      std::to_string(numel * dtype_size(*dtype)));
      view.data = std::span<const std::byte>(bytes_.data() + data_begin + begin,
                                             static_cast<std::size_t>(end - begin));
      order.emplace_back(begin, tensors_.size());
      ends.push_back(end);
      tensors_.push_back(std::move(view));
    }
    // Tensors must tile the data section: sorted by offset, each starts where the previous ended.
    std::sort(order.begin(), order.end());
    std::uint64_t expected = 0;
    for (const auto& [begin, i] : order) {
      if (begin != expected)
        bad(tensors_[i].name, "data_offsets begin " + std::to_string(begin) +
                                  (begin < expected ? " overlaps" : " leaves a gap after") +
                                  " the previous tensor (which ends at " + std::to_string(expected) + ")");
      expected = ends[i];
    }
    if (expected != data_size)
      bad("", "tensors cover " + std::to_string(expected) + " of the " + std::to_string(data_size) +
                  " data bytes: trailing bytes");
    std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  }

  std::filesystem::path path_;
  std::vector<std::byte> bytes_;
  std::vector<SafetensorsView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: the bytes are borrowed until save_safetensors returns.
struct SafetensorsEntry {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
};

inline SafetensorsEntry tensor_f32(std::string name, std::vector<std::int64_t> shape,
                                   std::span<const float> values) {
  return {std::move(name), Dtype::F32, std::move(shape), std::as_bytes(values)};
}

// The file's bytes: header (sorted names, padded with spaces to a multiple of 8), then the data in
// name order. Throws InvalidArgument for duplicate or reserved names and size mismatches.
inline std::string serialize_safetensors(std::span<const SafetensorsEntry> tensors,
                                         const std::map<std::string, std::string>& metadata = {}) {
  std::vector<const SafetensorsEntry*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->name < b->name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const auto& t = *sorted[i];
    if (t.name.empty() || t.name == "__metadata__")
      fail<InvalidArgument>("safetensors: invalid tensor name '", t.name, "'");
    if (i > 0 && sorted[i - 1]->name == t.name)
      fail<InvalidArgument>("safetensors: duplicate tensor '", t.name, "'");
    std::uint64_t numel = 1;
    for (const auto d : t.shape) {
      if (d < 0) fail<InvalidArgument>("safetensors: tensor '", t.name, "' has a negative dimension");
      numel *= static_cast<std::uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.data.size())
      fail<InvalidArgument>("safetensors: tensor '", t.name, "' has ", t.data.size(), " bytes, its shape ",
                            SafetensorsFile::shape_text(t.shape), " x ", dtype_name(t.dtype), " needs ",
                            numel * dtype_size(t.dtype));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const std::uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  out.reserve(8 + json.size() + offset);
  out += json;
  for (const auto* t : sorted)
    if (!t->data.empty()) out.append(reinterpret_cast<const char*>(t->data.data()), t->data.size());
  return out;
}

// Writes atomically: the target is replaced only once the whole file is on disk.
inline void save_safetensors(const std::filesystem::path& path, std::span<const SafetensorsEntry> tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  const std::string bytes = serialize_safetensors(tensors, metadata);
  write_file_atomically(path, bytes);
}

inline void save_safetensors(const std::filesystem::path& path,
                             std::initializer_list<SafetensorsEntry> tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  save_safetensors(path, std::span<const SafetensorsEntry>(tensors.begin(), tensors.size()), metadata);
}

}  // namespace p4lm::io
