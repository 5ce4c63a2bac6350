#pragma once
// Words of a text and a dictionary of known words, for the gold judge (eval/gold_judge.hpp).
//
//   p4lm::eval::Lexicon lex;
//   lex.add_text("A young boy befriends a gentle alien.");
//   lex.knows("befriended");   // true: "befriend" + "ed" (suffix fallback)
//   lex.knows("xqzt");         // false
//
// The judge builds its dictionary from text that ships with the repository (the TMDB overviews and
// the catalog's titles, tags and genres: see GoldJudge), never from a system word list, so a score
// is the same on every machine. The suffix fallbacks only ever accept more words (a plural, a past
// tense, an -ing form of a known word): a string that is no word at all stays unknown.

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace p4lm::eval {

// A word as written: letters (ASCII or any UTF-8 multi-byte character), digits, and apostrophes or
// hyphens between them ("don't", "sci-fi", "Schindler's", "Amélie").
struct WordToken {
  std::string_view text;
  std::size_t begin = 0;  // byte offset in the text
  bool has_digit() const {
    return std::any_of(text.begin(), text.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  }
  bool has_letter() const {
    return std::any_of(text.begin(), text.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return std::isalpha(u) || (u >= 0x80 && u != 0xE2);
    });
  }
};

namespace detail {
inline bool word_byte(unsigned char c) {
  return std::isalnum(c) || c >= 0x80;
}
// The UTF-8 right single quotation mark (U+2019) is E2 80 99: an apostrophe, not a letter.
inline bool curly_apostrophe_at(std::string_view s, std::size_t i) {
  return i + 2 < s.size() && static_cast<unsigned char>(s[i]) == 0xE2 &&
         static_cast<unsigned char>(s[i + 1]) == 0x80 && static_cast<unsigned char>(s[i + 2]) == 0x99;
}
// Other E2 80 xx punctuation (dashes, curly double quotes, ellipsis) separates words.
inline bool utf8_punctuation_at(std::string_view s, std::size_t i) {
  return i + 2 < s.size() && static_cast<unsigned char>(s[i]) == 0xE2 &&
         static_cast<unsigned char>(s[i + 1]) == 0x80;
}
}  // namespace detail

inline std::vector<WordToken> word_tokens(std::string_view text) {
  std::vector<WordToken> out;
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto starts_word = [&](std::size_t k) {
    return k < n && detail::word_byte(static_cast<unsigned char>(text[k])) &&
           !detail::utf8_punctuation_at(text, k);
  };
  while (i < n) {
    if (!starts_word(i)) {
      ++i;
      continue;
    }
    const std::size_t begin = i;
    while (i < n) {
      if (starts_word(i)) {
        ++i;
        continue;
      }
      // An apostrophe or hyphen joins two word characters.
      std::size_t joiner = 0;
      if (text[i] == '\'' || text[i] == '-') joiner = 1;
      if (detail::curly_apostrophe_at(text, i)) joiner = 3;
      if (joiner && i > begin && starts_word(i + joiner)) {
        i += joiner;
        continue;
      }
      break;
    }
    out.push_back({text.substr(begin, i - begin), begin});
  }
  return out;
}

inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Lower-cased word tokens that contain a letter (numbers are not words).
inline std::vector<std::string> lower_words(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& t : word_tokens(text))
    if (t.has_letter()) out.push_back(lower_ascii(t.text));
  return out;
}

// English function words: they carry no plot content (eval/gold_judge.hpp's overview matching).
inline bool is_stopword(std::string_view w) {
  static const std::unordered_set<std::string_view> words{
      "a",          "an",    "the",   "and",   "or",    "but",   "if",    "of",     "to",      "in",
      "on",         "at",    "by",    "for",   "with",  "from",  "into",  "onto",   "as",      "is",
      "are",        "was",   "were",  "be",    "been",  "being", "am",    "it",     "its",     "it's",
      "this",       "that",  "these", "those", "he",    "she",   "they",  "them",   "his",     "her",
      "hers",       "their", "him",   "we",    "us",    "our",   "you",   "your",   "i",       "me",
      "my",         "who",   "whom",  "whose", "which", "what",  "when",  "where",  "why",     "how",
      "not",        "no",    "so",    "than",  "then",  "there", "here",  "has",    "have",    "had",
      "do",         "does",  "did",   "will",  "would", "can",   "could", "shall",  "should",  "may",
      "might",      "must",  "up",    "out",   "about", "over",  "after", "before", "all",     "any",
      "some",       "one",   "more",  "most",  "very",  "just",  "also",  "only",   "while",   "s",
      "t",          "each",  "both",  "own",   "such",  "too",   "again", "once",   "himself", "herself",
      "themselves", "itself"};
  return words.count(w) > 0;
}

class Lexicon {
 public:
  // Adds every word of `text` (lower-cased; hyphenated words also as their parts).
  void add_text(std::string_view text) {
    for (const auto& t : word_tokens(text)) {
      if (!t.has_letter()) continue;
      auto w = lower_ascii(t.text);
      if (w.find('-') != std::string::npos) {
        std::size_t start = 0;
        for (std::size_t k = 0; k <= w.size(); ++k)
          if (k == w.size() || w[k] == '-') {
            if (k > start) words_.insert(w.substr(start, k - start));
            start = k + 1;
          }
      }
      words_.insert(std::move(w));
    }
  }
  void add_word(std::string_view word) { words_.insert(lower_ascii(word)); }

  std::size_t size() const noexcept { return words_.size(); }

  // Whether `word` (any case) is known: as written, without a possessive 's, part by part when
  // hyphenated, or as a known word plus a regular suffix.
  bool knows(std::string_view word) const {
    const auto w = lower_ascii(word);
    if (known_form(w)) return true;
    for (std::string_view poss : {"'s", "\xE2\x80\x99s", "'", "\xE2\x80\x99"})
      if (w.size() > poss.size() && std::string_view(w).ends_with(poss) &&
          known_form(w.substr(0, w.size() - poss.size())))
        return true;
    if (w.find('-') != std::string::npos) {
      std::size_t start = 0;
      for (std::size_t k = 0; k <= w.size(); ++k)
        if (k == w.size() || w[k] == '-') {
          if (k > start && !known_form(w.substr(start, k - start))) return false;
          start = k + 1;
        }
      return true;
    }
    return false;
  }

 private:
  bool has(std::string_view w) const { return words_.count(std::string(w)) > 0; }

  bool known_form(const std::string& w) const {
    if (has(w)) return true;
    const std::string_view v(w);
    auto stem_known = [&](std::size_t cut, std::string_view add = {}) {
      if (v.size() <= cut + 2) return false;
      std::string stem(v.substr(0, v.size() - cut));
      stem += add;
      return has(stem);
    };
    if (v.ends_with("ies") && stem_known(3, "y")) return true;
    if (v.ends_with("es") && stem_known(2)) return true;
    if (v.ends_with('s') && !v.ends_with("ss") && stem_known(1)) return true;
    if (v.ends_with("ied") && stem_known(3, "y")) return true;
    if (v.ends_with("ed") && (stem_known(2) || stem_known(1) || undoubled(v, 2))) return true;
    if (v.ends_with("ing") && (stem_known(3) || stem_known(3, "e") || undoubled(v, 3))) return true;
    if (v.ends_with("ly") && (stem_known(2) || (v.ends_with("ily") && stem_known(3, "y")))) return true;
    if (v.ends_with("est") && (stem_known(3) || stem_known(2))) return true;
    if (v.ends_with("er") && (stem_known(2) || stem_known(1))) return true;
    return false;
  }
  // "stopped" -> "stop", "running" -> "run".
  bool undoubled(std::string_view v, std::size_t cut) const {
    if (v.size() < cut + 3) return false;
    const auto stem = v.substr(0, v.size() - cut);
    return stem[stem.size() - 1] == stem[stem.size() - 2] && has(stem.substr(0, stem.size() - 1));
  }

  std::unordered_set<std::string> words_;
};

}  // namespace p4lm::eval
