#pragma once
// Reader of llama2.c's legacy (version 0) checkpoints, e.g. the bundled stories260K.bin:
// 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means the classifier is not shared with the token embedding), then float32 weights in
// run.c's order, each matrix row-major (out x in):
//   token_embedding (vocab, dim)          rms_att (L, dim)
//   wq (L, dim, dim)   wk, wv (L, kv_dim, dim)   wo (L, dim, dim)
//   rms_ffn (L, dim)   w1, w3 (L, hidden, dim)   w2 (L, dim, hidden)
//   rms_final (dim)    freq_cis_real, freq_cis_imag (seq_len, head_size / 2; skipped: RoPE is
//   recomputed)        wcls (vocab, dim) only when unshared.
//
//   auto ckpt = p4lm::io::load_llama2c(p4lm::data_path("tiny-lm/stories260K/stories260K.bin"));
//   const auto& wq = ckpt.at("wq");   // wq.shape == {5, 64, 64}, wq.data.size() == 20480

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/io/finite.hpp"

namespace p4lm::io {

struct Llama2cConfig {
  std::int32_t dim = 0;
  std::int32_t hidden_dim = 0;
  std::int32_t n_layers = 0;
  std::int32_t n_heads = 0;
  std::int32_t n_kv_heads = 0;
  std::int32_t vocab_size = 0;  // always positive here; see shared_classifier
  std::int32_t seq_len = 0;
  bool shared_classifier = true;

  std::int32_t head_size() const noexcept { return dim / n_heads; }
  std::int32_t kv_dim() const noexcept { return dim / n_heads * n_kv_heads; }
};

struct Llama2cWeight {
  std::string name;
  std::vector<std::size_t> shape;
  std::vector<float> data;
};

struct Llama2cCheckpoint {
  Llama2cConfig config;
  std::vector<Llama2cWeight> weights;  // in file order (freq_cis tables left out)

  const Llama2cWeight& at(std::string_view name) const {
    for (const auto& w : weights)
      if (w.name == name) return w;
    fail<InvalidArgument>("llama2.c checkpoint has no weight '", name, "'");
  }
  bool contains(std::string_view name) const noexcept {
    for (const auto& w : weights)
      if (w.name == name) return true;
    return false;
  }
};

namespace detail {

struct Llama2cEntry {
  const char* name;
  std::vector<std::size_t> shape;
  bool keep;
};

inline std::vector<Llama2cEntry> llama2c_layout(const Llama2cConfig& c) {
  const auto L = static_cast<std::size_t>(c.n_layers), d = static_cast<std::size_t>(c.dim),
             h = static_cast<std::size_t>(c.hidden_dim), v = static_cast<std::size_t>(c.vocab_size),
             kv = static_cast<std::size_t>(c.kv_dim()), half = static_cast<std::size_t>(c.head_size() / 2),
             s = static_cast<std::size_t>(c.seq_len);
  std::vector<Llama2cEntry> layout = {{"token_embedding", {v, d}, true},
                                      {"rms_att", {L, d}, true},
                                      {"wq", {L, d, d}, true},
                                      {"wk", {L, kv, d}, true},
                                      {"wv", {L, kv, d}, true},
                                      {"wo", {L, d, d}, true},
                                      {"rms_ffn", {L, d}, true},
                                      {"w1", {L, h, d}, true},
                                      {"w2", {L, d, h}, true},
                                      {"w3", {L, h, d}, true},
                                      {"rms_final", {d}, true},
                                      {"freq_cis_real", {s, half}, false},
                                      {"freq_cis_imag", {s, half}, false}};
  if (!c.shared_classifier) layout.push_back({"wcls", {v, d}, true});
  return layout;
}

}  // namespace detail

// Reads the header only (7 int32), validated.
inline Llama2cConfig read_llama2c_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  std::int32_t h[7] = {};
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (in.gcount() != static_cast<std::streamsize>(sizeof h))
    throw ParseError(path, 0, "header", "file ends inside the 28-byte llama2.c header");
  if (h[0] == 0x616b3432)  // "ak42": llama2.c's versioned export (export.py --version 1/2)
    throw ParseError(path, 0, "header",
                     "llama2.c versioned format (magic ak42) is not supported; export with --version 0");
  // A negative vocab_size marks an unshared classifier; INT32_MIN has no positive (left 0: refused).
  const std::int32_t vocab = h[5] == std::numeric_limits<std::int32_t>::min() ? 0 : h[5] < 0 ? -h[5] : h[5];
  Llama2cConfig c{h[0], h[1], h[2], h[3], h[4], vocab, h[6], h[5] > 0};
  auto bad = [&](const char* field, std::int32_t value, const char* why) {
    throw ParseError(path, 0, field, std::to_string(value) + " " + why + " (not a llama2.c checkpoint?)");
  };
  constexpr std::int32_t limit = 1 << 20;  // far beyond any llama2.c model; rejects garbage headers
  if (c.dim <= 0 || c.dim > limit) bad("dim", c.dim, "is out of range");
  if (c.hidden_dim <= 0 || c.hidden_dim > 8 * limit) bad("hidden_dim", c.hidden_dim, "is out of range");
  if (c.n_layers <= 0 || c.n_layers > 4096) bad("n_layers", c.n_layers, "is out of range");
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0) bad("n_heads", c.n_heads, "does not divide dim");
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    bad("n_kv_heads", c.n_kv_heads, "does not divide n_heads");
  if (c.vocab_size <= 0 || c.vocab_size > 16 * limit) bad("vocab_size", h[5], "is out of range");
  if (c.seq_len <= 0 || c.seq_len > 16 * limit) bad("seq_len", c.seq_len, "is out of range");
  return c;
}

// Reads the whole checkpoint. A short file names the tensor where it ran out; a long one says how
// many bytes are left over (usually a config that does not match the weights); a NaN or infinite
// weight names its tensor (io/finite.hpp).
inline Llama2cCheckpoint load_llama2c(const std::filesystem::path& path) {
  Llama2cCheckpoint ckpt;
  ckpt.config = read_llama2c_config(path);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail<IoError>(path.string(), ": cannot open for reading");
  const auto end = in.tellg();
  // A folder opens as a stream on Linux and reports a bogus size: refuse anything but a file.
  if (end < 0 || !std::filesystem::is_regular_file(path))
    fail<IoError>(path.string(), ": not a regular file");
  const auto file_size = static_cast<std::uint64_t>(end);
  in.seekg(28);
  std::uint64_t offset = 28;
  const auto layout = detail::llama2c_layout(ckpt.config);
  for (const auto& entry : layout) {
    std::uint64_t numel = 1;
    for (const auto d : entry.shape) numel *= d;
    const std::uint64_t bytes = numel * sizeof(float);
    if (file_size - offset < bytes)
      throw ParseError(path, 0, entry.name,
                       "file ends at byte " + std::to_string(file_size) + ", inside this tensor (bytes " +
                           std::to_string(offset) + ".." + std::to_string(offset + bytes) +
                           "): truncated file?");
    if (entry.keep) {
      Llama2cWeight w{entry.name, entry.shape, std::vector<float>(static_cast<std::size_t>(numel))};
      if (!in.read(reinterpret_cast<char*>(w.data.data()), static_cast<std::streamsize>(bytes)))
        fail<IoError>(path.string(), ": read failed in tensor '", entry.name, "'");
      require_finite<float>(w.data, path, entry.name);
      ckpt.weights.push_back(std::move(w));
    } else {
      in.seekg(static_cast<std::streamoff>(bytes), std::ios::cur);
    }
    offset += bytes;
  }
  if (offset != file_size)
    throw ParseError(path, 0, layout.back().name,
                     std::to_string(file_size - offset) +
                         " bytes left after the last tensor: the header's config does not match the weights");
  return ckpt;
}

}  // namespace p4lm::io
