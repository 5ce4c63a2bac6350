#pragma once
// SFT data: prompt text, tokenization and batching for the pitch model.
//
// A training sequence is   [BOS] prompt tokens [Pitch marker] | pitch tokens [EOS]
// and the loss counts only the positions that predict a pitch token or the EOS. The prompt holds
// the movie's facts as text: "Heat (1995). Action, Crime, Thriller. <first overview sentence>".
// With CF conditioning (the paper's P4LM) the user is NOT in the prompt: the CFAdapter's soft tokens
// go before it. With text conditioning (the SFT-Text baseline) the user's profile text is prepended
// ("Viewer: Loves crime; ...") and there is no prefix.
//
// Tiny models have tiny contexts (stories260K: 512 positions, a 512-piece vocabulary, so ~3
// characters per token): prompts keep the first overview sentence only and are truncated to
// max_prompt_tokens, pitches to max_pitch_tokens.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "p4lm/cf/ratings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/ops/softmax_cross_entropy.hpp"  // ops::ignore_index_default

namespace p4lm::train {

enum class Conditioning { cf, text };

inline const char* to_string(Conditioning c) {
  return c == Conditioning::cf ? "cf" : "text";
}
inline Conditioning parse_conditioning(std::string_view s) {
  if (s == "cf") return Conditioning::cf;
  if (s == "text") return Conditioning::text;
  fail<InvalidArgument>("conditioning '", s, "': expected cf or text");
}

struct PromptOptions {
  std::size_t max_prompt_tokens = 96;  // BOS + prompt + marker
  std::size_t max_pitch_tokens = 200;  // pitch + EOS
  bool first_sentence_only = true;     // of the overview
  std::string marker = "Pitch:";
};

// The tokenizer the base model came with, type-erased (llama2.c pieces, GPT-2 BPE, ...).
struct TextCodec {
  std::function<std::vector<std::int32_t>(std::string_view)> encode;  // no BOS / EOS
  std::function<std::string(std::span<const std::int32_t>)> decode;
  std::int32_t bos = 0, eos = 0;
  std::size_t vocab_size = 0;
  std::string name;
};

// First sentence of a text: up to the first ". ", "! " or "? " (or all of it).
inline std::string first_sentence(std::string_view text) {
  for (std::size_t i = 0; i + 1 < text.size(); ++i)
    if ((text[i] == '.' || text[i] == '!' || text[i] == '?') && text[i + 1] == ' ')
      return std::string(text.substr(0, i + 1));
  return std::string(text);
}

// "Heat (1995). Action, Crime, Thriller. A group of professional bank robbers ..."
inline std::string item_prompt(std::string_view title, std::optional<int> year,
                               const std::vector<std::string>& genres, std::string_view overview,
                               const PromptOptions& o = {}) {
  std::string s(title);
  if (year) s += " (" + std::to_string(*year) + ")";
  s += ".";
  if (!genres.empty()) {
    s += " ";
    for (std::size_t k = 0; k < genres.size(); ++k) s += (k ? ", " : "") + genres[k];
    s += ".";
  }
  if (!overview.empty())
    s += " " + (o.first_sentence_only ? first_sentence(overview) : std::string(overview));
  return s;
}

// The SFT-Text prompt: the user's profile, then the movie.
inline std::string text_prompt(std::string_view profile, std::string_view item) {
  return "Viewer: " + std::string(profile) + "\nMovie: " + std::string(item);
}

// One tokenized example. user / item are rows of the CF embeddings (-1 when unknown / unused).
struct SftSequence {
  cf::Index user = -1, item = -1;
  std::int64_t user_id = 0, movie_id = 0;
  std::vector<std::int32_t> ids;  // BOS, prompt, marker, pitch, EOS
  std::uint32_t prompt_len = 0;   // tokens before the first pitch token
  // ids[link_begin, link_end): the pitch tokens of the link sentence, the part of the pitch that
  // depends on who the user is (empty range when unknown or absent).
  std::uint32_t link_begin = 0, link_end = 0;
  std::size_t pitch_tokens() const noexcept { return ids.size() - prompt_len; }
};

// Prompt ids: BOS + prompt (truncated) + "\n" marker. The tokens a generator is started with.
inline std::vector<std::int32_t> encode_prompt(const TextCodec& codec, std::string_view prompt,
                                               const PromptOptions& o) {
  auto marker = codec.encode("\n" + o.marker);
  auto body = codec.encode(prompt);
  if (o.max_prompt_tokens < marker.size() + 2)
    fail<InvalidArgument>("PromptOptions: max_prompt_tokens ", o.max_prompt_tokens,
                          " leaves no room for a prompt");
  const std::size_t room = o.max_prompt_tokens - 1 - marker.size();
  if (body.size() > room) body.resize(room);
  std::vector<std::int32_t> ids{codec.bos};
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), marker.begin(), marker.end());
  return ids;
}

// Tokens of `pieces` (the encoding of `text`) that overlap text[begin, end), as [first, last). Token
// k covers the characters that decoding it adds, so the answer follows the tokenizer exactly; a
// tokenizer that adds a leading space when decoding (sentencepiece's dummy prefix) is allowed for.
inline std::pair<std::size_t, std::size_t> tokens_covering(const TextCodec& codec, std::string_view text,
                                                           std::span<const std::int32_t> pieces,
                                                           std::size_t begin, std::size_t end) {
  const std::string full = codec.decode(pieces);
  const std::size_t lead =
      full.size() > text.size() && full.starts_with(' ') && !text.starts_with(' ') ? 1 : 0;
  std::size_t first = pieces.size(), last = 0, prev = 0;
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    const std::size_t upto = codec.decode(pieces.subspan(0, k + 1)).size();
    const std::size_t lo = prev > lead ? prev - lead : 0, hi = upto > lead ? upto - lead : 0;
    prev = upto;
    if (hi > begin && lo < end) first = std::min(first, k), last = k + 1;
  }
  return first < last ? std::pair{first, last} : std::pair<std::size_t, std::size_t>{0, 0};
}

// The leading part of `text` whose encoding has more than `tokens` tokens, cut at a space, or all of
// it. Encoding (and decoding prefixes) cost grows with the text, at least linearly, for some
// tokenizers quadratically (llama2.c's BPE merges): a pitch is cut to a few times the characters its
// kept tokens can cover before anything is encoded. Cut at a space and with `margin` extra tokens, the
// kept tokens are those of the whole text for the tokenizers p4lm ships (pieces do not cross spaces).
inline std::string_view text_for_tokens(const TextCodec& codec, std::string_view text, std::size_t tokens,
                                        std::size_t margin = 16) {
  std::size_t chars = 8 * (tokens + margin);
  while (chars < text.size()) {
    std::size_t cut = text.find(' ', chars);
    if (cut == std::string_view::npos || cut > 2 * chars) {  // no space near: cut between characters
      cut = chars;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
    }
    if (codec.encode(text.substr(0, cut)).size() > tokens + margin) return text.substr(0, cut);
    chars *= 2;
  }
  return text;
}

// link_span: [begin, end) characters of the pitch's link sentence, or empty.
inline SftSequence encode_example(const TextCodec& codec, std::string_view prompt,
                                  std::string_view full_pitch, const PromptOptions& o,
                                  std::span<const std::size_t> link_span = {}) {
  SftSequence s;
  s.ids = encode_prompt(codec, prompt, o);
  s.prompt_len = static_cast<std::uint32_t>(s.ids.size());
  if (o.max_pitch_tokens < 2) fail<InvalidArgument>("PromptOptions: max_pitch_tokens must be >= 2");
  const std::string_view pitch = text_for_tokens(codec, full_pitch, o.max_pitch_tokens - 1);
  auto p = codec.encode(pitch);
  const std::size_t kept = std::min(p.size(), o.max_pitch_tokens - 1);
  if (link_span.size() == 2) {
    const auto [first, last] = tokens_covering(codec, pitch, p, link_span[0], link_span[1]);
    s.link_begin = static_cast<std::uint32_t>(s.prompt_len + std::min(first, kept));
    s.link_end = static_cast<std::uint32_t>(s.prompt_len + std::min(last, kept));
  }
  p.resize(kept);
  s.ids.insert(s.ids.end(), p.begin(), p.end());
  s.ids.push_back(codec.eos);
  return s;
}

// A padded batch: text inputs ids (B, T), targets (B, P + T) over prefix + text positions, lengths (B).
// Target of text position t is ids[t + 1] when that is a pitch token (or EOS), else ignored; prefix
// positions predict nothing. With bos_in_prefix the sequences' first token (BOS) is left out of ids:
// the prefix carries it (see soft_prompt.hpp), so position p still holds token p - P + 1. Buffers grow
// only, so a training loop allocates nothing once warm.
struct SftBatch {
  CpuTensor<std::int32_t> ids, targets, lengths;
  std::vector<cf::Index> users, items;
  std::size_t counted = 0;  // targets that count in the loss

  void build(std::span<const SftSequence* const> seqs, std::size_t prefix_len, bool bos_in_prefix = false) {
    const std::size_t B = seqs.size(), skip = bos_in_prefix ? 1 : 0;
    if (B == 0) fail<InvalidArgument>("SftBatch: empty batch");
    std::size_t T = 1;
    for (const auto* s : seqs) {
      if (s->ids.size() < 2 + skip || s->prompt_len <= skip || s->prompt_len >= s->ids.size())
        fail<InvalidArgument>("SftBatch: sequence of user ", s->user_id, ", movie ", s->movie_id,
                              " has no pitch");
      T = std::max(T, s->ids.size() - 1 - skip);
    }
    const std::size_t S = prefix_len + T;
    ids.resize(Shape{B, T}, 0);
    targets.resize(Shape{B, S}, ops::ignore_index_default);
    lengths.resize(Shape{B});
    users.resize(B);
    items.resize(B);
    counted = 0;
    for (std::size_t b = 0; b < B; ++b) {
      const auto& s = *seqs[b];
      const std::size_t n = s.ids.size() - 1;  // ids[0, n) are inputs, each predicting its successor
      std::copy(s.ids.begin() + static_cast<std::ptrdiff_t>(skip),
                s.ids.begin() + static_cast<std::ptrdiff_t>(n), ids.data() + b * T);
      lengths.data()[b] = static_cast<std::int32_t>(n - skip);
      for (std::size_t t = s.prompt_len - 1; t < n; ++t)
        targets.data()[b * S + prefix_len + t - skip] = s.ids[t + 1];
      counted += n - (s.prompt_len - 1);
      users[b] = s.user;
      items[b] = s.item;
    }
  }
};

}  // namespace p4lm::train
