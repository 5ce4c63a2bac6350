#pragma once
// The tokenizer of llama2.c models (tokenizer.bin / tok512.bin): a SentencePiece BPE vocabulary
// exported as int32 max_token_length, then per token float32 score, int32 length, raw bytes.
//
//   auto tok = p4lm::text::Llama2cTokenizer::bundled();          // stories260K's tok512.bin
//   auto ids = tok.encode("Once upon a time");                   // {1, 403, 407, 261, 378}
//   tok.decode(ids) == "Once upon a time"
//
// Encoding follows llama2.c's run.c: optional BOS, a dummy-prefix space, one symbol per UTF-8
// character (at most 4 bytes), byte fallback to the <0xXX> tokens for characters not in the
// vocabulary, then greedy merging of the adjacent pair whose concatenation is the piece of highest
// score (leftmost on ties). One deliberate difference: control pieces (<unk>, BOS, EOS) and byte
// pieces never take part in merges (as in SentencePiece), so text like "<0x41>" stays text.
// Decoding drops BOS/EOS, strips the dummy-prefix space after BOS and turns <0xXX> into the byte.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"

namespace p4lm::text {

class Llama2cTokenizer {
 public:
  // Ids fixed by llama2.c's exporter (SentencePiece's defaults).
  static constexpr std::int32_t unk = 0, bos = 1, eos = 2;

  struct EncodeOptions {
    bool bos = true;  // run.c's generate() encodes prompts with BOS and without EOS
    bool eos = false;
  };

  static Llama2cTokenizer from_file(const std::filesystem::path& path) {
    Llama2cTokenizer tok;
    tok.load(path);
    return tok;
  }
  // stories260K's 512-token vocabulary from p4lm's data folder.
  static Llama2cTokenizer bundled() { return from_file(data_path("tiny-lm/stories260K/tok512.bin")); }

  std::size_t vocab_size() const noexcept { return pieces_.size(); }
  std::optional<std::int32_t> bos_id() const noexcept { return bos; }
  std::optional<std::int32_t> eos_id() const noexcept { return eos; }
  std::int32_t unk_id() const noexcept { return unk; }
  std::int32_t max_token_length() const noexcept { return max_token_length_; }

  const std::string& piece(std::int32_t id) const { return pieces_[checked(id)]; }
  float score(std::int32_t id) const { return scores_[checked(id)]; }
  // The token of a raw byte (<0xXX>), or unk when the vocabulary has no byte pieces.
  std::int32_t byte_token(unsigned char b) const noexcept { return byte_id_[b]; }

  std::vector<std::int32_t> encode(std::string_view text) const { return encode(text, EncodeOptions{}); }

  std::vector<std::int32_t> encode(std::string_view text, EncodeOptions options) const {
    std::vector<std::int32_t> ids;
    if (options.bos) ids.push_back(bos);
    std::vector<std::int32_t> symbols;
    symbols.reserve(text.size() + 1);
    if (!text.empty()) symbols.push_back(space_id_);
    // One symbol per UTF-8 character, as run.c groups bytes (lead byte + up to 3 continuations).
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t len = 1;
      while (len < 4 && pos + len < text.size() &&
             (static_cast<unsigned char>(text[pos + len]) & 0xC0) == 0x80)
        ++len;
      const auto chunk = text.substr(pos, len);
      if (const auto it = piece_id_.find(chunk); it != piece_id_.end()) {
        symbols.push_back(it->second);
      } else {
        for (const char c : chunk) symbols.push_back(byte_id_[static_cast<unsigned char>(c)]);
      }
      pos += len;
    }
    merge(symbols);
    ids.insert(ids.end(), symbols.begin(), symbols.end());
    if (options.eos) ids.push_back(eos);
    return ids;
  }

  std::string decode(std::span<const std::int32_t> ids) const {
    std::string out;
    std::int32_t prev = -1;
    for (const auto id : ids) {
      append_piece(out, prev, id);
      prev = id;
    }
    return out;
  }

  // llama2.c's decode(prev_token, token) for streaming: the text one token adds after `prev`.
  std::string decode_piece(std::int32_t prev, std::int32_t id) const {
    std::string out;
    append_piece(out, prev, id);
    return out;
  }

 private:
  Llama2cTokenizer() = default;

  std::size_t checked(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size())
      fail<InvalidArgument>("Llama2cTokenizer: token id ", id, " outside the vocabulary [0, ", pieces_.size(),
                            ")");
    return static_cast<std::size_t>(id);
  }

  void append_piece(std::string& out, std::int32_t prev, std::int32_t id) const {
    const auto i = checked(id);
    if (id == bos || id == eos) return;
    if (byte_of_[i] >= 0) {
      out += static_cast<char>(byte_of_[i]);
      return;
    }
    std::string_view p = pieces_[i];
    if (prev == bos && !p.empty() && p.front() == ' ') p.remove_prefix(1);
    out += p;
  }

  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  // run.c's loop merges the best-scoring adjacent pair (strictly greater wins, so the leftmost of
  // equals) until no pair concatenates to a piece. Same choices here in O(n log n): symbols form a
  // linked list, candidate pairs sit in a max-heap ordered by (score, leftmost), and entries made
  // stale by an earlier merge are skipped when popped.
  void merge(std::vector<std::int32_t>& symbols) const {
    const std::size_t n = symbols.size();
    if (n < 2) return;
    struct Candidate {
      float score;
      std::uint32_t left, right;
      std::int32_t left_id, right_id, merged;
      bool operator<(const Candidate& o) const noexcept {  // heap top: highest score, then leftmost
        return score != o.score ? score < o.score : left > o.left;
      }
    };
    std::vector<std::uint32_t> next(n), prev(n);
    for (std::size_t i = 0; i < n; ++i)
      next[i] = static_cast<std::uint32_t>(i + 1), prev[i] = static_cast<std::uint32_t>(i - 1);
    std::vector<Candidate> heap;
    auto push = [&](std::uint32_t l, std::uint32_t r) {
      const auto it = merges_.find(pair_key(symbols[l], symbols[r]));
      if (it == merges_.end()) return;
      const float score = scores_[static_cast<std::size_t>(it->second)];
      if (!(score > -1e10f)) return;  // run.c's best_score starts at -1e10
      heap.push_back({score, l, r, symbols[l], symbols[r], it->second});
      std::push_heap(heap.begin(), heap.end());
    };
    constexpr std::int32_t dead = -1;
    for (std::uint32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Candidate c = heap.back();
      heap.pop_back();
      if (symbols[c.left] != c.left_id || symbols[c.right] != c.right_id || next[c.left] != c.right) continue;
      symbols[c.left] = c.merged;
      symbols[c.right] = dead;
      next[c.left] = next[c.right];
      if (next[c.left] < n) prev[next[c.left]] = c.left;
      if (c.left > 0) push(prev[c.left], c.left);
      if (next[c.left] < n) push(c.left, next[c.left]);
    }
    std::erase(symbols, dead);
  }

  static std::optional<int> parse_byte_piece(std::string_view p) {
    if (p.size() != 6 || !p.starts_with("<0x") || p.back() != '>') return std::nullopt;
    int value = 0;
    for (const char c : p.substr(3, 2)) {
      const int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (digit < 0) return std::nullopt;
      value = value * 16 + digit;
    }
    return value;
  }

  void load(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail<IoError>(path.string(), ": cannot open for reading");
    const auto end = in.tellg();
    // A folder opens as a stream on Linux and reports a bogus size: refuse anything but a file.
    if (end < 0 || !std::filesystem::is_regular_file(path))
      fail<IoError>(path.string(), ": not a regular file");
    const auto size = static_cast<std::size_t>(end);
    in.seekg(0);
    std::string bytes(size, '\0');
    if (!in.read(bytes.data(), static_cast<std::streamsize>(size)))
      fail<IoError>(path.string(), ": read failed");
    std::size_t pos = 0;
    auto read = [&](void* dst, std::size_t n, const char* what) {
      if (size - pos < n)
        throw ParseError(
            path, 0, what,
            "file ends at byte " + std::to_string(size) + " inside token " + std::to_string(pieces_.size()));
      std::memcpy(dst, bytes.data() + pos, n);
      pos += n;
    };
    read(&max_token_length_, 4, "max_token_length");
    if (max_token_length_ <= 0 || max_token_length_ > 1 << 16)
      throw ParseError(path, 0, "max_token_length", "implausible value " + std::to_string(max_token_length_));
    while (pos < size) {
      float score = 0;
      std::int32_t len = 0;
      read(&score, 4, "score");
      read(&len, 4, "length");
      if (len < 0 || len > max_token_length_)
        throw ParseError(path, 0, "length",
                         "token " + std::to_string(pieces_.size()) + " has length " + std::to_string(len) +
                             " outside [0, max_token_length=" + std::to_string(max_token_length_) + "]");
      std::string p(static_cast<std::size_t>(len), '\0');
      read(p.data(), p.size(), "bytes");
      pieces_.push_back(std::move(p));
      scores_.push_back(score);
    }
    if (pieces_.size() <= eos) throw ParseError(path, 0, "", "fewer than 3 tokens: not a llama2.c tokenizer");
    byte_of_.assign(pieces_.size(), -1);
    for (auto& b : byte_id_) b = unk;
    for (std::size_t id = 0; id < pieces_.size(); ++id) {
      const auto i32 = static_cast<std::int32_t>(id);
      if (const auto b = parse_byte_piece(pieces_[id]); b && id > eos) {
        byte_of_[id] = *b;
        byte_id_[*b] = i32;
      } else if (id > eos) {
        piece_id_.emplace(pieces_[id], i32);  // first occurrence wins, as run.c's sorted lookup
      }
    }
    // Every pair of mergeable pieces whose concatenation is a piece: run.c's str_lookup(a + b).
    for (std::size_t id = 0; id < pieces_.size(); ++id) {
      const std::string_view p = pieces_[id];
      if (byte_of_[id] >= 0 || id <= eos || piece_id_.at(std::string(p)) != static_cast<std::int32_t>(id))
        continue;
      for (std::size_t k = 1; k < p.size(); ++k) {
        const auto l = piece_id_.find(p.substr(0, k)), r = piece_id_.find(p.substr(k));
        if (l != piece_id_.end() && r != piece_id_.end())
          merges_.emplace(pair_key(l->second, r->second), static_cast<std::int32_t>(id));
      }
    }
    const auto space = piece_id_.find(std::string_view(" "));
    space_id_ = space != piece_id_.end() ? space->second : byte_id_[' '];
  }

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  std::int32_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<int> byte_of_;  // id -> byte for <0xXX> pieces, else -1
  std::int32_t byte_id_[256] = {};
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> piece_id_;
  std::unordered_map<std::uint64_t, std::int32_t> merges_;  // (left, right) -> merged id
  std::int32_t space_id_ = unk;
};

}  // namespace p4lm::text
