#pragma once
// GPT-2's byte-level BPE tokenizer (OpenAI encoder.py semantics), built from encoder.json + vocab.bpe.
//
//   auto tok = p4lm::text::Gpt2Tokenizer::bundled();     // data/gpt2-tokenizer/
//   std::vector<std::int32_t> ids = tok.encode("hello world");   // {31373, 995}
//   std::string text = tok.decode(ids);                           // "hello world"
//
// encode() treats every byte as text ("<|endoftext|>" in the input becomes ordinary tokens);
// encode_with_special() also maps allowed special-token strings to their ids.
//
// The same byte-level BPE serves other vocabularies through from_vocab() (tokens and merges in
// GPT-2's printable spelling, as tokenizer.json and GGUF store them), with a pre-tokenizer choice
// (Pretokenizer::smollm: every digit alone, then GPT-2's pattern; SmolLM2) and special tokens that
// encode() recognises in text when the vocabulary asks for it (text/gguf_tokenizer.hpp). Any byte string
// encodes and decodes back to itself, invalid UTF-8 included. encode() is thread-safe;
// copies share one pre-token cache.
//
// BPE runs on token ids rather than on the printable strings of encoder.json: the vocabulary and
// merges are converted back to raw bytes once at load, so encoding never builds mapped strings.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/text/byte_level.hpp"

namespace p4lm::text {

// Splits text the way GPT-2's pre-tokenizer regex does,
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// calling piece(std::string_view) for each match, in order; the pieces concatenate to `text`.
// A hand-written scanner over code points: std::regex has no \p{L}, and a scanner is much faster.
template <class F>
void gpt2_pretokenize(std::string_view text, F&& piece) {
  struct Scanned {
    std::uint32_t offset;
    CodePointClass cls;
    char ascii;  // the character if ASCII, else 0 (for ' and contractions)
  };
  std::vector<Scanned> cps;
  cps.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const auto cp = next_code_point(text, pos);
    cps.push_back({static_cast<std::uint32_t>(pos), code_point_class(cp.value),
                   cp.value < 128 ? static_cast<char>(cp.value) : '\0'});
    pos += cp.length;
  }
  const std::size_t n = cps.size();
  auto ascii_at = [&](std::size_t i) { return i < n ? cps[i].ascii : '\0'; };
  auto offset_at = [&](std::size_t i) { return i < n ? std::size_t{cps[i].offset} : text.size(); };
  std::size_t i = 0;
  while (i < n) {
    std::size_t j = i;
    if (cps[i].ascii == '\'') {
      const char a = ascii_at(i + 1), b = ascii_at(i + 2);
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        j = i + 3;
    }
    if (j == i) {
      // " ?X+" takes one leading U+0020 when a letter, number or other character follows it.
      const std::size_t k =
          (cps[i].ascii == ' ' && i + 1 < n && cps[i + 1].cls != CodePointClass::space) ? i + 1 : i;
      const CodePointClass cls = cps[k].cls;
      j = k + 1;
      while (j < n && cps[j].cls == cls) ++j;
      // "\s+(?!\S)" backs off one character so the last space can prefix the next word; a lone
      // space before a non-space falls through to "\s+".
      if (cls == CodePointClass::space && j < n && j - i > 1) --j;
    }
    piece(text.substr(offset_at(i), offset_at(j) - offset_at(i)));
    i = j;
  }
}

// The "smollm" pre-tokenizer (SmolLM/SmolLM2's tokenizer.json: Digits(individual_digits) then
// ByteLevel; llama.cpp's "smollm"): every \p{N} code point is a piece of its own, and the text
// between them is split by gpt2_pretokenize on its own (so a space before a digit stands alone).
template <class F>
void smollm_pretokenize(std::string_view text, F&& piece) {
  std::size_t start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto cp = next_code_point(text, pos);
    if (cp.value != CodePoint::invalid && code_point_class(cp.value) == CodePointClass::number) {
      if (pos > start) gpt2_pretokenize(text.substr(start, pos - start), piece);
      piece(text.substr(pos, cp.length));
      start = pos + cp.length;
    }
    pos += cp.length;
  }
  if (start < text.size()) gpt2_pretokenize(text.substr(start), piece);
}

enum class Pretokenizer { gpt2, smollm };

class Gpt2Tokenizer {
 public:
  static constexpr std::int32_t eot = 50256;  // <|endoftext|> in GPT-2's vocabulary
  static constexpr std::string_view eot_text = "<|endoftext|>";

  // encoder.json (token string -> id) and vocab.bpe (merges, rank = line order).
  static Gpt2Tokenizer from_files(const std::filesystem::path& encoder_json,
                                  const std::filesystem::path& vocab_bpe) {
    Gpt2Tokenizer tok;
    tok.load_encoder(encoder_json);
    tok.load_merges(vocab_bpe);
    return tok;
  }
  // A folder holding encoder.json and vocab.bpe.
  static Gpt2Tokenizer from_folder(const std::filesystem::path& folder) {
    return from_files(folder / "encoder.json", folder / "vocab.bpe");
  }
  // Another byte-level BPE vocabulary: tokens[id] and merges ("left right", rank = order) in GPT-2's
  // printable spelling; special_ids name the tokens kept verbatim (control tokens such as
  // <|im_start|>), which encode() recognises in text when parse_special is set. `origin` names the
  // source in errors.
  struct VocabOptions {
    Pretokenizer pretokenizer = Pretokenizer::gpt2;
    std::optional<std::int32_t> bos, eos;
    std::optional<std::int32_t> unk;  // stands for bytes without a token (runs fused, as HF's fuse_unk)
    std::vector<std::int32_t> special_ids;
    bool parse_special = false;
  };
  static Gpt2Tokenizer from_vocab(std::span<const std::string> tokens, std::span<const std::string> merges,
                                  const VocabOptions& options, const std::filesystem::path& origin) {
    Gpt2Tokenizer tok;
    tok.pre_ = options.pretokenizer;
    tok.parse_special_ = options.parse_special;
    const auto n = tokens.size();
    std::vector<bool> special(n, false);
    for (const auto id : options.special_ids) {
      if (id < 0 || static_cast<std::size_t>(id) >= n)
        throw ParseError(origin, 0, "special_ids", "id " + std::to_string(id) + " outside the vocabulary");
      special[static_cast<std::size_t>(id)] = true;
    }
    for (const auto id : {options.bos, options.eos, options.unk})
      if (id && (*id < 0 || static_cast<std::size_t>(*id) >= n))
        throw ParseError(origin, 0, "bos/eos", "id " + std::to_string(*id) + " outside the vocabulary");
    tok.bos_ = options.bos;
    tok.eos_ = options.eos;
    tok.id_to_bytes_.resize(n);
    tok.specials_.clear();
    for (std::size_t id = 0; id < n; ++id) {
      std::optional<std::string> bytes = special[id] ? std::optional(tokens[id]) : unmap(tokens[id]);
      if (!bytes)
        throw ParseError(origin, 0, "tokens",
                         "token " + std::to_string(id) + " '" + tokens[id] +
                             "' has a character outside GPT-2's byte alphabet");
      if (special[id]) tok.specials_.emplace_back(*bytes, static_cast<std::int32_t>(id));
      tok.bytes_to_id_.emplace(*bytes, static_cast<std::int32_t>(id));  // first id wins on duplicates
      tok.id_to_bytes_[id] = std::move(*bytes);
    }
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = tok.bytes_to_id_.find(std::string(1, static_cast<char>(b)));
      if (it == tok.bytes_to_id_.end() && !options.unk)
        throw ParseError(origin, 0, "tokens",
                         "no token for byte " + std::to_string(b) + " and no unknown token");
      tok.byte_id_[b] = it == tok.bytes_to_id_.end() ? *options.unk : it->second;
      tok.byte_missing_[b] = it == tok.bytes_to_id_.end();
    }
    tok.merges_.reserve(merges.size());
    std::int32_t rank = 0;
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const std::string_view line = merges[i];
      const auto space = line.find(' ');
      const auto where = "merge " + std::to_string(i);
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
        throw ParseError(origin, 0, "merges",
                         where + " '" + merges[i] + "': expected two tokens separated by one space");
      const auto left = unmap(line.substr(0, space)), right = unmap(line.substr(space + 1));
      if (!left || !right)
        throw ParseError(origin, 0, "merges", where + ": character outside GPT-2's byte alphabet");
      const auto l = tok.bytes_to_id_.find(*left), r = tok.bytes_to_id_.find(*right),
                 m = tok.bytes_to_id_.find(*left + *right);
      if (l == tok.bytes_to_id_.end() || r == tok.bytes_to_id_.end() || m == tok.bytes_to_id_.end())
        throw ParseError(origin, 0, "merges",
                         where + " '" + merges[i] + "': merge of tokens missing from the vocabulary");
      tok.merges_.insert(l->second, r->second, rank++, m->second);
    }
    if (tok.merges_.size() == 0) throw ParseError(origin, 0, "merges", "no merge rules");
    return tok;
  }

  // The files bundled in p4lm's data folder (gpt2-tokenizer/).
  static Gpt2Tokenizer bundled() {
    return from_files(data_path("gpt2-tokenizer/encoder.json"), data_path("gpt2-tokenizer/vocab.bpe"));
  }

  std::size_t vocab_size() const noexcept { return id_to_bytes_.size(); }
  std::optional<std::int32_t> bos_id() const noexcept { return bos_; }  // GPT-2 uses EOT for both
  std::optional<std::int32_t> eos_id() const noexcept { return eos_; }
  Pretokenizer pretokenizer() const noexcept { return pre_; }
  // Special tokens (text, id) encode_with_special() can recognise; encode() does when parse_special().
  const std::vector<std::pair<std::string, std::int32_t>>& special_tokens() const noexcept {
    return specials_;
  }
  bool parse_special() const noexcept { return parse_special_; }
  std::int32_t eot_id() const noexcept { return eot; }

  // Ordinary encoding: all input is text, except the special tokens of a vocabulary built with
  // parse_special (SmolLM2's <|im_start|>, as HF tokenizers and llama.cpp parse them).
  std::vector<std::int32_t> encode(std::string_view text) const {
    if (parse_special_) return encode_with_special(text, {});
    return encode_ordinary(text);
  }

  // All input is text, whatever the vocabulary's special tokens.
  std::vector<std::int32_t> encode_ordinary(std::string_view text) const {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 3 + 1);
    encode_into(text, ids);
    return ids;
  }

  // Like encode(), but each occurrence of an allowed special-token string becomes its id (an empty
  // `allowed` means all of special_tokens()). Leftmost match first, the longest on a tie.
  std::vector<std::int32_t> encode_with_special(std::string_view text,
                                                std::span<const std::string_view> allowed = {}) const {
    std::vector<std::pair<std::string_view, std::int32_t>> specials;
    for (auto s : allowed) {
      const auto it =
          std::find_if(specials_.begin(), specials_.end(), [&](const auto& p) { return p.first == s; });
      if (it == specials_.end()) {
        std::string known;
        for (const auto& p : specials_) known += (known.empty() ? "" : ", ") + p.first;
        fail<InvalidArgument>("Gpt2Tokenizer: '", s, "' is not a special token of this vocabulary (it has ",
                              known.empty() ? std::string("none") : known, ")");
      }
      specials.emplace_back(it->first, it->second);
    }
    if (allowed.empty())
      for (const auto& p : specials_) specials.emplace_back(p.first, p.second);
    std::vector<std::int32_t> ids;
    while (!text.empty()) {
      std::size_t at = std::string_view::npos;
      std::pair<std::string_view, std::int32_t> found{};
      for (const auto& s : specials) {
        const auto pos = text.find(s.first);
        if (pos < at || (pos == at && pos != std::string_view::npos && s.first.size() > found.first.size()))
          at = pos, found = s;
      }
      encode_into(text.substr(0, at), ids);
      if (at == std::string_view::npos) break;
      ids.push_back(found.second);
      text.remove_prefix(at + found.first.size());
    }
    return ids;
  }

  std::string decode(std::span<const std::int32_t> ids) const {
    std::string out;
    for (const auto id : ids) out += token_bytes(id);
    return out;
  }

  // The raw bytes of one token; InvalidArgument for an id outside the vocabulary.
  const std::string& token_bytes(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_bytes_.size())
      fail<InvalidArgument>("Gpt2Tokenizer: token id ", id, " outside the vocabulary [0, ",
                            id_to_bytes_.size(), ")");
    return id_to_bytes_[static_cast<std::size_t>(id)];
  }

  // The id of a token given as raw bytes, if the vocabulary has it.
  std::optional<std::int32_t> token_id(std::string_view bytes) const {
    const auto it = bytes_to_id_.find(std::string(bytes));
    if (it == bytes_to_id_.end()) return std::nullopt;
    return it->second;
  }

  std::size_t merge_count() const noexcept { return merges_.size(); }

 private:
  // Merge table: (left id, right id) -> (rank, merged id), open addressing with linear probing.
  struct MergeTable {
    struct Slot {
      std::uint64_t key = empty;
      std::int32_t rank = 0;
      std::int32_t merged = 0;
    };
    static constexpr std::uint64_t empty = ~std::uint64_t{0};
    std::vector<Slot> slots;
    std::size_t count = 0;

    static std::uint64_t key(std::int32_t a, std::int32_t b) noexcept {
      return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
             static_cast<std::uint32_t>(b);
    }
    static std::size_t hash(std::uint64_t k) noexcept {
      k ^= k >> 33;
      k *= 0xff51afd7ed558ccdULL;
      k ^= k >> 33;
      return static_cast<std::size_t>(k);
    }
    void reserve(std::size_t n) {
      std::size_t cap = 16;
      while (cap < 2 * n) cap *= 2;
      slots.assign(cap, Slot{});
    }
    // False if the pair is already present (the first, lowest rank wins, as in encoder.py's dict).
    bool insert(std::int32_t a, std::int32_t b, std::int32_t rank, std::int32_t merged) {
      const auto k = key(a, b);
      for (std::size_t i = hash(k) & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1)) {
        if (slots[i].key == k) return false;
        if (slots[i].key == empty) {
          slots[i] = {k, rank, merged};
          ++count;
          return true;
        }
      }
    }
    const Slot* find(std::int32_t a, std::int32_t b) const noexcept {
      const auto k = key(a, b);
      for (std::size_t i = hash(k) & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1)) {
        if (slots[i].key == k) return &slots[i];
        if (slots[i].key == empty) return nullptr;
      }
    }
    std::size_t size() const noexcept { return count; }
  };

  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Pre-token -> ids. Text repeats words heavily, so most pre-tokens skip BPE entirely.
  struct Cache {
    static constexpr std::size_t max_entries = 1 << 17;  // cleared when full: bounded memory
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::int32_t>, StringHash, std::equal_to<>> map;
  };

  void encode_into(std::string_view text, std::vector<std::int32_t>& ids) const {
    std::vector<std::int32_t> parts;
    auto each_piece = [&](std::string_view word) {
      if (word.size() == 1) {
        ids.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
        return;
      }
      {
        std::lock_guard lock(cache_->mutex);
        if (const auto it = cache_->map.find(word); it != cache_->map.end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          return;
        }
      }
      bpe(word, parts);
      ids.insert(ids.end(), parts.begin(), parts.end());
      std::lock_guard lock(cache_->mutex);
      if (cache_->map.size() >= Cache::max_entries) cache_->map.clear();
      cache_->map.emplace(std::string(word), parts);
    };
    if (pre_ == Pretokenizer::smollm)
      smollm_pretokenize(text, each_piece);
    else
      gpt2_pretokenize(text, each_piece);
  }

  // encoder.py's bpe(): repeatedly merge the adjacent pair of lowest rank, every occurrence left to
  // right, until no adjacent pair is a merge rule.
  void bpe(std::string_view word, std::vector<std::int32_t>& parts) const {
    parts.clear();
    bool previous_missing = false;
    for (const char c : word) {
      const auto b = static_cast<unsigned char>(c);
      if (!(byte_missing_[b] && previous_missing)) parts.push_back(byte_id_[b]);
      previous_missing = byte_missing_[b];
    }
    while (parts.size() > 1) {
      std::int32_t best_rank = std::numeric_limits<std::int32_t>::max();
      std::size_t best = 0;
      for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        const auto* slot = merges_.find(parts[i], parts[i + 1]);
        if (slot != nullptr && slot->rank < best_rank) best_rank = slot->rank, best = i;
      }
      if (best_rank == std::numeric_limits<std::int32_t>::max()) break;
      const std::int32_t a = parts[best], b = parts[best + 1];
      const std::int32_t merged = merges_.find(a, b)->merged;
      std::size_t out = best;
      for (std::size_t i = best; i < parts.size();) {
        if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
          parts[out++] = merged;
          i += 2;
        } else {
          parts[out++] = parts[i++];
        }
      }
      parts.resize(out);
    }
  }

  // A token string of encoder.json / vocab.bpe (printable code points) back to raw bytes.
  static std::optional<std::string> unmap(std::string_view mapped) {
    std::string bytes;
    for (std::size_t pos = 0; pos < mapped.size();) {
      const auto cp = next_code_point(mapped, pos);
      const int b = cp.value == CodePoint::invalid ? -1 : gpt2_unicode_to_byte(cp.value);
      if (b < 0) return std::nullopt;
      bytes += static_cast<char>(b);
      pos += cp.length;
    }
    return bytes;
  }

  void load_encoder(const std::filesystem::path& path) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(io::read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(path, 0, "", std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object() || j.empty()) throw ParseError(path, 0, "", "expected a JSON object token -> id");
    id_to_bytes_.assign(j.size(), std::string());
    std::vector<bool> seen(j.size(), false);
    for (const auto& [key, value] : j.items()) {
      if (!value.is_number_integer()) throw ParseError(path, 0, key, "id is not an integer");
      const auto id = value.get<std::int64_t>();
      if (id < 0 || static_cast<std::size_t>(id) >= j.size() || seen[static_cast<std::size_t>(id)])
        throw ParseError(path, 0, key, "id " + std::to_string(id) + " is out of range or repeated");
      auto bytes = unmap(key);
      if (!bytes) throw ParseError(path, 0, key, "token has a character outside GPT-2's byte alphabet");
      seen[static_cast<std::size_t>(id)] = true;
      bytes_to_id_.emplace(*bytes, static_cast<std::int32_t>(id));
      id_to_bytes_[static_cast<std::size_t>(id)] = std::move(*bytes);
    }
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = bytes_to_id_.find(std::string(1, static_cast<char>(b)));
      if (it == bytes_to_id_.end()) throw ParseError(path, 0, "", "no token for byte " + std::to_string(b));
      byte_id_[b] = it->second;
    }
    if (id_to_bytes_.size() <= static_cast<std::size_t>(eot) || id_to_bytes_[eot] != eot_text)
      throw ParseError(path, 0, "", "id 50256 is not <|endoftext|>: not GPT-2's encoder.json");
    specials_ = {{std::string(eot_text), eot}};
  }

  void load_merges(const std::filesystem::path& path) {
    const std::string content = io::read_file(path);
    std::vector<std::string_view> lines;
    for (std::size_t pos = 0; pos < content.size();) {
      auto end = content.find('\n', pos);
      if (end == std::string::npos) end = content.size();
      std::string_view line(content.data() + pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      lines.push_back(line);
      pos = end + 1;
    }
    merges_.reserve(lines.size());
    std::int32_t rank = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const auto line = lines[i];
      if (line.empty() || (i == 0 && line.starts_with("#version"))) continue;
      const auto space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
        throw ParseError(path, i + 1, "", "expected two tokens separated by one space");
      const auto left = unmap(line.substr(0, space)), right = unmap(line.substr(space + 1));
      if (!left || !right)
        throw ParseError(path, i + 1, "", "token has a character outside GPT-2's byte alphabet");
      const auto l = bytes_to_id_.find(*left), r = bytes_to_id_.find(*right),
                 m = bytes_to_id_.find(*left + *right);
      if (l == bytes_to_id_.end() || r == bytes_to_id_.end() || m == bytes_to_id_.end())
        throw ParseError(path, i + 1, "", "merge of tokens missing from encoder.json");
      merges_.insert(l->second, r->second, rank++, m->second);
    }
    if (merges_.size() == 0) throw ParseError(path, 0, "", "no merge rules");
  }

  Gpt2Tokenizer() = default;

  std::vector<std::string> id_to_bytes_;
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> bytes_to_id_;
  std::int32_t byte_id_[256] = {};
  bool byte_missing_[256] = {};  // byte without a token: byte_id_ is the unknown token
  MergeTable merges_;
  Pretokenizer pre_ = Pretokenizer::gpt2;
  std::optional<std::int32_t> bos_ = eot, eos_ = eot;
  std::vector<std::pair<std::string, std::int32_t>> specials_;
  bool parse_special_ = false;
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();  // shared by copies
};

}  // namespace p4lm::text
