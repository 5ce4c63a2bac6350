#pragma once
// Byte-level helpers shared by the tokenizers: a lenient UTF-8 scanner that never fails (an invalid
// byte becomes a code point of its own, class "other"), the Unicode classes the GPT-2 pre-tokenizer
// needs, and GPT-2's byte <-> printable-code-point table (bytes_to_unicode in OpenAI's encoder.py).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "p4lm/text/detail/unicode_classes.hpp"

namespace p4lm::text {

using detail::CodePointClass;

// One scanned code point: its value (or invalid_code_point) and how many bytes it took.
struct CodePoint {
  static constexpr std::uint32_t invalid = 0xFFFFFFFFu;
  std::uint32_t value = invalid;
  std::uint32_t length = 1;
};

// Decodes the code point at text[pos] (pos < text.size()). Only well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF) is decoded; anything else yields
// {invalid, 1} so each bad byte stands alone and the byte string still round-trips.
inline CodePoint next_code_point(std::string_view text, std::size_t pos) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const std::size_t left = text.size() - pos;
  const unsigned b0 = s[0];
  if (b0 < 0x80) return {b0, 1};
  auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i < left && s[i] >= lo && s[i] <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (cont(1)) return {((b0 & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2};
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    if (cont(1, lo, hi) && cont(2)) return {((b0 & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3};
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (cont(1, lo, hi) && cont(2) && cont(3))
      return {((b0 & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu), 4};
  }
  return {CodePoint::invalid, 1};
}

// The pre-tokenizer class of a code point (\p{L}, \p{N}, \s or other); invalid bytes are "other".
inline CodePointClass code_point_class(std::uint32_t cp) noexcept {
  constexpr auto ascii = [] {
    std::array<CodePointClass, 128> table{};
    for (std::uint32_t c = 0; c < 128; ++c) {
      const std::uint32_t* runs = detail::unicode_class_runs;
      std::size_t i = 0;
      while (i + 1 < std::size(detail::unicode_class_runs) && (runs[i + 1] >> 2) <= c) ++i;
      table[c] = static_cast<CodePointClass>(runs[i] & 3u);
    }
    return table;
  }();
  if (cp < 128) return ascii[cp];
  if (cp > 0x10FFFF) return CodePointClass::other;
  // Last run whose first code point is <= cp.
  const auto* begin = std::begin(detail::unicode_class_runs);
  const auto* it = std::upper_bound(begin, std::end(detail::unicode_class_runs), cp,
                                    [](std::uint32_t v, std::uint32_t run) { return v < (run >> 2); });
  return static_cast<CodePointClass>(*(it - 1) & 3u);
}

// Appends the UTF-8 encoding of a valid code point.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// GPT-2's byte -> code point table: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in byte order, so every byte string has a printable, whitespace-free spelling.
inline constexpr std::array<std::uint16_t, 256> gpt2_byte_to_unicode = [] {
  std::array<std::uint16_t, 256> table{};
  std::uint16_t next = 256;
  for (unsigned b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    table[b] = printable ? static_cast<std::uint16_t>(b) : next++;
  }
  return table;
}();

// Inverse of gpt2_byte_to_unicode: code point (< 324) -> byte, or -1.
inline int gpt2_unicode_to_byte(std::uint32_t cp) noexcept {
  constexpr auto inverse = [] {
    std::array<std::int16_t, 324> table{};
    table.fill(-1);
    for (unsigned b = 0; b < 256; ++b) table[gpt2_byte_to_unicode[b]] = static_cast<std::int16_t>(b);
    return table;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

}  // namespace p4lm::text
