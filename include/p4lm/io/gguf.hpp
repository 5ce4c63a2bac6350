#pragma once
// The GGUF model format (ggml / llama.cpp), versions 2 and 3, read-only:
//   "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 value type, value)*     strings are u64 length + UTF-8 bytes,
//                                                      arrays are u32 element type + u64 count + elements
//   tensor infos: (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)*
//   padding to general.alignment (default 32), then the tensor data; offsets are relative to it.
//
//   p4lm::GgufFile f("SmolLM2-135M-Instruct.Q4_1.gguf");
//   auto layers = f.get<std::uint32_t>("llama.block_count");
//   auto tokens = f.string_array("tokenizer.ggml.tokens");
//   for (const auto& t : f.tensors()) std::cout << t.name << ' ' << ggml_type_name(t.type) << '\n';
//   std::vector<float> w = f.dequantize("blk.0.attn_q.weight");  // row-major, shape() order
//
// Shapes: GGUF stores ne[] innermost first (ne[0] is the length of a row); GgufTensorInfo::shape()
// gives the row-major order (outermost first) that p4lm and NumPy use, so a Llama weight of
// ne = [in, out] has shape() = {out, in}, the (out, in) layout of ops::matmul_forward.
//
// Tensor types F32, F16, BF16, F64, I8..I32, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K are dequantized as ggml
// defines them (ggml-quants.c dequantize_row_*); every other known type parses (so a file holding one
// still opens) but refuses dequantize() by name. Every problem is a ParseError naming the file and the
// key or tensor: bad magic, unsupported version or type, truncation, offsets out of range, duplicate
// names, dimension overflow. The parser works on a byte buffer (GgufFile::parse) for fuzzing.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/safetensors.hpp"  // f16_to_float, bf16_to_float

namespace p4lm::io {

// Metadata value types (gguf.h enum gguf_type).
enum class GgufType : std::uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12
};

constexpr std::string_view gguf_type_name(GgufType t) noexcept {
  constexpr std::string_view names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < std::size(names) ? names[i] : "?";
}

// Tensor types (ggml.h enum ggml_type), with the block size and bytes per block of each.
enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;
  std::uint32_t block;  // elements per block
  std::uint32_t bytes;  // bytes per block
  bool dequantizable;   // supported by GgufFile::dequantize
};

inline constexpr GgmlTypeTraits ggml_types[] = {{GgmlType::F32, "F32", 1, 4, true},
                                                {GgmlType::F16, "F16", 1, 2, true},
                                                {GgmlType::Q4_0, "Q4_0", 32, 18, true},
                                                {GgmlType::Q4_1, "Q4_1", 32, 20, true},
                                                {GgmlType::Q5_0, "Q5_0", 32, 22, false},
                                                {GgmlType::Q5_1, "Q5_1", 32, 24, false},
                                                {GgmlType::Q8_0, "Q8_0", 32, 34, true},
                                                {GgmlType::Q8_1, "Q8_1", 32, 40, false},
                                                {GgmlType::Q2_K, "Q2_K", 256, 84, false},
                                                {GgmlType::Q3_K, "Q3_K", 256, 110, false},
                                                {GgmlType::Q4_K, "Q4_K", 256, 144, true},
                                                {GgmlType::Q5_K, "Q5_K", 256, 176, false},
                                                {GgmlType::Q6_K, "Q6_K", 256, 210, true},
                                                {GgmlType::Q8_K, "Q8_K", 256, 292, false},
                                                {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66, false},
                                                {GgmlType::IQ2_XS, "IQ2_XS", 256, 74, false},
                                                {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98, false},
                                                {GgmlType::IQ1_S, "IQ1_S", 256, 50, false},
                                                {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, false},
                                                {GgmlType::IQ3_S, "IQ3_S", 256, 110, false},
                                                {GgmlType::IQ2_S, "IQ2_S", 256, 82, false},
                                                {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, false},
                                                {GgmlType::I8, "I8", 1, 1, true},
                                                {GgmlType::I16, "I16", 1, 2, true},
                                                {GgmlType::I32, "I32", 1, 4, true},
                                                {GgmlType::I64, "I64", 1, 8, false},
                                                {GgmlType::F64, "F64", 1, 8, true},
                                                {GgmlType::IQ1_M, "IQ1_M", 256, 56, false},
                                                {GgmlType::BF16, "BF16", 1, 2, true},
                                                {GgmlType::TQ1_0, "TQ1_0", 256, 54, false},
                                                {GgmlType::TQ2_0, "TQ2_0", 256, 66, false},
                                                {GgmlType::MXFP4, "MXFP4", 32, 17, false}};

constexpr const GgmlTypeTraits* ggml_type_traits(std::uint32_t id) noexcept {
  for (const auto& t : ggml_types)
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  return nullptr;
}

constexpr std::string_view ggml_type_name(GgmlType t) noexcept {
  const auto* traits = ggml_type_traits(static_cast<std::uint32_t>(t));
  return traits ? traits->name : "?";
}

// One metadata array: its element type and either the strings or the raw little-endian elements.
struct GgufArray {
  GgufType type = GgufType::U8;
  std::uint64_t size = 0;
  std::vector<std::string> strings;     // type == STRING
  std::span<const std::byte> elements;  // numeric and bool types (bytes owned by the GgufFile)
};

using GgufValue =
    std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                 bool, std::string, GgufArray, std::uint64_t, std::int64_t, double>;

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<std::uint64_t> ne;  // ggml order: ne[0] innermost
  std::uint64_t offset = 0;       // relative to the data section
  std::uint64_t nbytes = 0;

  std::uint64_t numel() const noexcept {
    std::uint64_t n = 1;
    for (const auto d : ne) n *= d;
    return n;
  }
  // Row-major shape (outermost first).
  std::vector<std::size_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  static constexpr std::uint32_t magic = 0x46554747;  // "GGUF" little-endian
  static constexpr std::uint32_t default_alignment = 32;
  static constexpr std::size_t max_dims = 4;  // GGML_MAX_DIMS

  explicit GgufFile(const std::filesystem::path& path) : GgufFile(read_file(path), path) {}

  // Parses an in-memory file; `origin` names it in error messages.
  static GgufFile parse(std::vector<std::byte> bytes, const std::filesystem::path& origin = "<memory>") {
    return GgufFile(std::move(bytes), origin);
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint32_t alignment() const noexcept { return alignment_; }
  std::size_t data_offset() const noexcept { return data_begin_; }  // start of the tensor data
  std::size_t file_size() const noexcept { return bytes_->size(); }

  // Metadata keys in file order.
  const std::vector<std::string>& keys() const noexcept { return key_order_; }
  bool has(std::string_view key) const { return metadata_.find(key) != metadata_.end(); }
  const GgufValue& value(std::string_view key) const {
    const auto it = metadata_.find(key);
    if (it == metadata_.end()) bad(key, "metadata key not found");
    return it->second;
  }
  GgufType type_of(std::string_view key) const { return static_cast<GgufType>(value(key).index()); }

  // A scalar: integers convert between integer types when the value fits; f32 and f64 convert to
  // either float type; bool and string must match. Anything else names the key and both types.
  template <class T>
  T get(std::string_view key) const {
    const auto& v = value(key);
    if constexpr (std::is_same_v<T, std::string>) {
      if (const auto* s = std::get_if<std::string>(&v)) return *s;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (const auto* b = std::get_if<bool>(&v)) return *b;
    } else if constexpr (std::is_floating_point_v<T>) {
      if (const auto* f = std::get_if<float>(&v)) return static_cast<T>(*f);
      if (const auto* d = std::get_if<double>(&v)) return static_cast<T>(*d);
    } else if constexpr (std::is_integral_v<T>) {
      bool ok = false;
      T out{};
      std::visit(
          [&]<class V>(const V& x) {
            if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
              ok = std::in_range<T>(x);
              if (ok)
                out = static_cast<T>(x);
              else
                bad(key, "value " + std::to_string(x) + " does not fit the requested integer type");
            }
          },
          v);
      if (ok) return out;
    } else {
      static_assert(sizeof(T) == 0, "GgufFile::get: unsupported type");
    }
    bad(key, "has type " + type_text(v) + ", not the type requested");
  }

  template <class T>
  T get_or(std::string_view key, T fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }

  const GgufArray& array(std::string_view key) const {
    const auto* a = std::get_if<GgufArray>(&value(key));
    if (a == nullptr) bad(key, "has type " + type_text(value(key)) + ", not an array");
    return *a;
  }
  const std::vector<std::string>& string_array(std::string_view key) const {
    const auto& a = array(key);
    if (a.type != GgufType::STRING)
      bad(key, "is an array of " + std::string(gguf_type_name(a.type)) + ", not of strings");
    return a.strings;
  }
  // Integer (and bool) arrays as int64; u64 values above INT64_MAX are refused.
  std::vector<std::int64_t> int_array(std::string_view key) const {
    const auto& a = array(key);
    std::vector<std::int64_t> out(a.size);
    auto load = [&]<class T>(T) {
      for (std::size_t i = 0; i < out.size(); ++i) {
        T x;
        std::memcpy(&x, a.elements.data() + i * sizeof(T), sizeof(T));
        if (!std::in_range<std::int64_t>(x)) bad(key, "element " + std::to_string(i) + " exceeds int64");
        out[i] = static_cast<std::int64_t>(x);
      }
    };
    switch (a.type) {
      case GgufType::U8:
      case GgufType::BOOL:
        load(std::uint8_t{});
        break;
      case GgufType::I8:
        load(std::int8_t{});
        break;
      case GgufType::U16:
        load(std::uint16_t{});
        break;
      case GgufType::I16:
        load(std::int16_t{});
        break;
      case GgufType::U32:
        load(std::uint32_t{});
        break;
      case GgufType::I32:
        load(std::int32_t{});
        break;
      case GgufType::U64:
        load(std::uint64_t{});
        break;
      case GgufType::I64:
        load(std::int64_t{});
        break;
      default:
        bad(key, "is an array of " + std::string(gguf_type_name(a.type)) + ", not of integers");
    }
    return out;
  }
  std::vector<double> float_array(std::string_view key) const {
    const auto& a = array(key);
    std::vector<double> out(a.size);
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (a.type == GgufType::F32) {
        float x;
        std::memcpy(&x, a.elements.data() + 4 * i, 4);
        out[i] = x;
      } else if (a.type == GgufType::F64) {
        std::memcpy(&out[i], a.elements.data() + 8 * i, 8);
      } else {
        bad(key, "is an array of " + std::string(gguf_type_name(a.type)) + ", not of floats");
      }
    }
    return out;
  }

  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  bool has_tensor(std::string_view name) const { return tensor_index_.find(name) != tensor_index_.end(); }
  const GgufTensorInfo& tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    if (it == tensor_index_.end())
      throw ParseError(path_, 0, name,
                       "no such tensor in the file (" + std::to_string(tensors_.size()) + " tensors)");
    return tensors_[it->second];
  }
  // The tensor's bytes, as stored.
  std::span<const std::byte> raw(std::string_view name) const {
    const auto& t = tensor(name);
    return {bytes_->data() + data_begin_ + t.offset, static_cast<std::size_t>(t.nbytes)};
  }

  std::vector<float> dequantize(std::string_view name) const {
    std::vector<float> out(static_cast<std::size_t>(tensor(name).numel()));
    dequantize_into(name, out);
    return out;
  }

  // Dequantizes into `out` (numel floats, row-major).
  void dequantize_into(std::string_view name, std::span<float> out) const {
    const auto& t = tensor(name);
    if (out.size() != t.numel())
      fail<ShapeError>(path_.string(), ": tensor '", name, "': ", t.numel(), " values into a buffer of ",
                       out.size());
    const auto* traits = ggml_type_traits(static_cast<std::uint32_t>(t.type));
    if (!traits->dequantizable)
      throw ParseError(path_, 0, name,
                       "tensor type " + std::string(traits->name) +
                           " is not supported (supported: F32, F16, BF16, F64, I8, I16, I32, Q8_0, Q4_0, "
                           "Q4_1, Q4_K, Q6_K)");
    dequantize_blocks(t.type, raw(name).data(), out.data(), out.size());
  }

  // Decodes n values of type `type` from src (n a multiple of the type's block size).
  static void dequantize_blocks(GgmlType type, const std::byte* src, float* y, std::size_t n) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(src);
    switch (type) {
      case GgmlType::F32:
        if (n) std::memcpy(y, b, 4 * n);
        return;
      case GgmlType::F16:
        for (std::size_t i = 0; i < n; ++i) y[i] = f16_to_float(u16(b + 2 * i));
        return;
      case GgmlType::BF16:
        for (std::size_t i = 0; i < n; ++i) y[i] = bf16_to_float(u16(b + 2 * i));
        return;
      case GgmlType::F64:
        for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(load<double>(b + 8 * i));
        return;
      case GgmlType::I8:
        for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<std::int8_t>(b[i]);
        return;
      case GgmlType::I16:
        for (std::size_t i = 0; i < n; ++i) y[i] = load<std::int16_t>(b + 2 * i);
        return;
      case GgmlType::I32:
        for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(load<std::int32_t>(b + 4 * i));
        return;
      case GgmlType::Q8_0:  // {f16 d; i8 q[32]}: y = q * d
        for (std::size_t blk = 0; blk < n / 32; ++blk, b += 34, y += 32) {
          const float d = f16_to_float(u16(b));
          for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
        }
        return;
      case GgmlType::Q4_0:  // {f16 d; u8 qs[16]}: low nibbles are elements 0..15, high 16..31; y = (q - 8) d
        for (std::size_t blk = 0; blk < n / 32; ++blk, b += 18, y += 32) {
          const float d = f16_to_float(u16(b));
          for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
          }
        }
        return;
      case GgmlType::Q4_1:  // {f16 d; f16 m; u8 qs[16]}: y = q d + m
        for (std::size_t blk = 0; blk < n / 32; ++blk, b += 20, y += 32) {
          const float d = f16_to_float(u16(b)), m = f16_to_float(u16(b + 2));
          for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
            y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
          }
        }
        return;
      case GgmlType::Q4_K:
        dequantize_q4_k(b, y, n);
        return;
      case GgmlType::Q6_K:
        dequantize_q6_k(b, y, n);
        return;
      default:
        fail<InvalidArgument>("gguf: no dequantizer for type ", ggml_type_name(type));
    }
  }

 private:
  struct Less {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a < b; }
  };

  GgufFile(std::vector<std::byte> bytes, const std::filesystem::path& origin)
      : path_(origin), bytes_(std::make_shared<std::vector<std::byte>>(std::move(bytes))) {
    index();
  }

  static std::vector<std::byte> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail<IoError>(path.string(), ": cannot open for reading");
    const auto end = in.tellg();
    if (end < 0 || !std::filesystem::is_regular_file(path))
      fail<IoError>(path.string(), ": not a regular file");
    std::vector<std::byte> bytes(static_cast<std::size_t>(end));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
      fail<IoError>(path.string(), ": read failed");
    return bytes;
  }

  template <class T>
  static T load(const std::uint8_t* p) noexcept {
    T x;
    std::memcpy(&x, p, sizeof(T));
    return x;
  }
  static std::uint16_t u16(const std::uint8_t* p) noexcept { return load<std::uint16_t>(p); }

  // ggml's get_scale_min_k4: 8 six-bit scales and mins packed in 12 bytes.
  static void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) noexcept {
    if (j < 4) {
      sc = q[j] & 63;
      m = q[j + 4] & 63;
    } else {
      sc = static_cast<std::uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
      m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
  }

  // Q4_K: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} per 256 values, 8 sub-blocks of 32.
  static void dequantize_q4_k(const std::uint8_t* b, float* y, std::size_t n) noexcept {
    for (std::size_t blk = 0; blk < n / 256; ++blk, b += 144) {
      const float d = f16_to_float(u16(b)), dmin = f16_to_float(u16(b + 2));
      const std::uint8_t* scales = b + 4;
      const std::uint8_t* q = b + 16;
      for (int j = 0; j < 8; j += 2, q += 32) {
        std::uint8_t sc, m;
        scale_min_k4(j, scales, sc, m);
        const float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(j + 1, scales, sc, m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      }
    }
  }

  // Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} per 256 values, 16 sub-blocks of 16.
  static void dequantize_q6_k(const std::uint8_t* b, float* y, std::size_t n) noexcept {
    for (std::size_t blk = 0; blk < n / 256; ++blk, b += 210) {
      const float d = f16_to_float(u16(b + 208));
      const std::uint8_t* ql = b;
      const std::uint8_t* qh = b + 128;
      const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
      for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
          y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
          y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
          y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
        }
      }
    }
  }

  [[noreturn]] void bad(std::string_view field, const std::string& problem) const {
    throw ParseError(path_, 0, field, problem);
  }

  static std::string type_text(const GgufValue& v) {
    if (const auto* a = std::get_if<GgufArray>(&v)) return "array of " + std::string(gguf_type_name(a->type));
    return std::string(gguf_type_name(static_cast<GgufType>(v.index())));
  }

  // A bounds-checked cursor over the header; `where` names what is being read for errors.
  struct Cursor {
    const GgufFile* file;
    std::size_t pos = 0;
    std::string where;

    const std::uint8_t* take(std::uint64_t n) {
      const std::size_t size = file->bytes_->size();
      if (n > size - pos)
        file->bad(where, "needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos) +
                             " but the file ends at " + std::to_string(size) + ": truncated file");
      const auto* p = reinterpret_cast<const std::uint8_t*>(file->bytes_->data()) + pos;
      pos += static_cast<std::size_t>(n);
      return p;
    }
    template <class T>
    T read() {
      return load<T>(take(sizeof(T)));
    }
    std::string string() {
      const auto n = read<std::uint64_t>();
      const auto* p = take(n);
      return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
    }
  };

  static std::size_t scalar_size(GgufType t) noexcept {
    switch (t) {
      case GgufType::U8:
      case GgufType::I8:
      case GgufType::BOOL:
        return 1;
      case GgufType::U16:
      case GgufType::I16:
        return 2;
      case GgufType::U32:
      case GgufType::I32:
      case GgufType::F32:
        return 4;
      case GgufType::U64:
      case GgufType::I64:
      case GgufType::F64:
        return 8;
      default:
        return 0;
    }
  }

  GgufValue read_value(Cursor& c, std::uint32_t type_id, const std::string& key) const {
    switch (static_cast<GgufType>(type_id)) {
      case GgufType::U8:
        return c.read<std::uint8_t>();
      case GgufType::I8:
        return c.read<std::int8_t>();
      case GgufType::U16:
        return c.read<std::uint16_t>();
      case GgufType::I16:
        return c.read<std::int16_t>();
      case GgufType::U32:
        return c.read<std::uint32_t>();
      case GgufType::I32:
        return c.read<std::int32_t>();
      case GgufType::F32:
        return c.read<float>();
      case GgufType::BOOL: {
        const auto b = c.read<std::uint8_t>();
        if (b > 1) bad(key, "bool value " + std::to_string(b) + " is neither 0 nor 1");
        return b == 1;
      }
      case GgufType::STRING:
        return c.string();
      case GgufType::U64:
        return c.read<std::uint64_t>();
      case GgufType::I64:
        return c.read<std::int64_t>();
      case GgufType::F64:
        return c.read<double>();
      case GgufType::ARRAY: {
        GgufArray a;
        const auto elem = c.read<std::uint32_t>();
        a.size = c.read<std::uint64_t>();
        a.type = static_cast<GgufType>(elem);
        if (a.type == GgufType::ARRAY) bad(key, "nested arrays are not supported");
        if (a.type == GgufType::STRING) {
          // Each string needs at least its 8-byte length: bound the count before reserving.
          if (a.size > (bytes_->size() - c.pos) / 8)
            bad(key, "array of " + std::to_string(a.size) +
                         " strings runs past the end of the file: truncated file");
          a.strings.reserve(static_cast<std::size_t>(a.size));
          for (std::uint64_t i = 0; i < a.size; ++i) a.strings.push_back(c.string());
        } else {
          const auto size = scalar_size(a.type);
          if (size == 0) bad(key, "array element type " + std::to_string(elem) + " is not a GGUF value type");
          if (a.size > (bytes_->size() - c.pos) / size)
            bad(key, "array of " + std::to_string(a.size) +
                         " elements runs past the end of the file: truncated file");
          const auto* p = c.take(a.size * size);
          a.elements = {reinterpret_cast<const std::byte*>(p), static_cast<std::size_t>(a.size * size)};
          if (a.type == GgufType::BOOL)
            for (std::size_t i = 0; i < a.elements.size(); ++i)
              if (p[i] > 1) bad(key, "bool element " + std::to_string(i) + " is neither 0 nor 1");
        }
        return a;
      }
    }
    bad(key, "value type " + std::to_string(type_id) + " is not a GGUF value type");
  }

  void index() {
    Cursor c{this, 0, "header"};
    if (bytes_->size() < 4)
      bad("header", "file has " + std::to_string(bytes_->size()) + " bytes: not a GGUF file (truncated?)");
    const auto m = c.read<std::uint32_t>();
    if (m != magic) bad("header", "bad magic (not a GGUF file): the first 4 bytes are not \"GGUF\"");
    version_ = c.read<std::uint32_t>();
    if (version_ == 1) bad("header", "GGUF version 1 is not supported (versions 2 and 3 are)");
    if (version_ != 2 && version_ != 3) {
      if (version_ == 0x02000000u || version_ == 0x03000000u)
        bad("header", "big-endian GGUF is not supported");
      bad("header", "GGUF version " + std::to_string(version_) + " is not supported (versions 2 and 3 are)");
    }
    const auto n_tensors = c.read<std::uint64_t>();
    const auto n_kv = c.read<std::uint64_t>();
    // Every entry takes at least 12 bytes (kv: key length + type; tensor: name length + n_dims).
    if (n_kv > bytes_->size() / 12 || n_tensors > bytes_->size() / 12)
      bad("header", std::to_string(n_kv) + " metadata entries and " + std::to_string(n_tensors) +
                        " tensors cannot fit in " + std::to_string(bytes_->size()) +
                        " bytes: truncated or corrupt file");

    for (std::uint64_t i = 0; i < n_kv; ++i) {
      c.where = "metadata entry " + std::to_string(i);
      std::string key = c.string();
      c.where = key;
      const auto type = c.read<std::uint32_t>();
      GgufValue v = read_value(c, type, key);
      if (metadata_.contains(key)) bad(key, "duplicate metadata key");
      key_order_.push_back(key);
      metadata_.emplace(std::move(key), std::move(v));
    }

    if (has("general.alignment")) {
      const auto* a = std::get_if<std::uint32_t>(&value("general.alignment"));
      if (a == nullptr)
        bad("general.alignment", "must be a u32, has type " + type_text(value("general.alignment")));
      if (*a == 0 || (*a & (*a - 1)) != 0)
        bad("general.alignment", std::to_string(*a) + " is not a power of two");
      alignment_ = *a;
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      c.where = "tensor info " + std::to_string(i);
      GgufTensorInfo t;
      t.name = c.string();
      c.where = t.name;
      const auto n_dims = c.read<std::uint32_t>();
      if (n_dims > max_dims) bad(t.name, std::to_string(n_dims) + " dimensions (at most 4)");
      t.ne.resize(n_dims);
      std::uint64_t numel = 1;
      for (auto& d : t.ne) {
        d = c.read<std::uint64_t>();
        if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
            (d != 0 && numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / d))
          bad(t.name, "dimensions overflow int64");
        numel *= d;
      }
      const auto type = c.read<std::uint32_t>();
      const auto* traits = ggml_type_traits(type);
      if (traits == nullptr) bad(t.name, "tensor type " + std::to_string(type) + " is not a known ggml type");
      t.type = traits->type;
      if (!t.ne.empty() && t.ne[0] % traits->block != 0)
        bad(t.name, "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                        std::string(traits->name) + " block size " + std::to_string(traits->block));
      if (t.ne.empty() && traits->block != 1) bad(t.name, "a scalar cannot be block-quantized");
      if (numel / traits->block > std::numeric_limits<std::uint64_t>::max() / traits->bytes)
        bad(t.name, "byte size overflows 64 bits");
      t.nbytes = numel / traits->block * traits->bytes;
      t.offset = c.read<std::uint64_t>();
      if (t.offset % alignment_ != 0)
        bad(t.name, "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                        std::to_string(alignment_));
      if (tensor_index_.contains(t.name)) bad(t.name, "duplicate tensor name");
      tensor_index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    const std::size_t size = bytes_->size();
    const std::size_t begin = (c.pos + alignment_ - 1) / alignment_ * alignment_;
    data_begin_ = std::min(begin, size);
    for (const auto& t : tensors_) {
      if (begin > size || t.offset > size - begin || t.nbytes > size - begin - t.offset)
        bad(t.name, "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                        ") runs past the end of the file (data section of " +
                        std::to_string(begin > size ? 0 : size - begin) + " bytes): truncated file");
    }
    // Tensors must not overlap (ggml lays them out back to back, each aligned).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
    for (const auto& t : tensors_) spans.emplace_back(t.offset, t.offset + t.nbytes);
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return spans[a] < spans[b]; });
    for (std::size_t i = 1; i < order.size(); ++i)
      if (spans[order[i]].first < spans[order[i - 1]].second &&
          spans[order[i]].first != spans[order[i]].second)
        bad(tensors_[order[i]].name, "data overlaps tensor '" + tensors_[order[i - 1]].name + "'");
  }

  std::filesystem::path path_;
  std::shared_ptr<const std::vector<std::byte>> bytes_;  // shared: copies of a GgufFile are cheap
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = default_alignment;
  std::size_t data_begin_ = 0;
  std::map<std::string, GgufValue, Less> metadata_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, Less> tensor_index_;
};

}  // namespace p4lm::io

namespace p4lm {
using io::GgufFile;
}  // namespace p4lm
