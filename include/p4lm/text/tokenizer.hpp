#pragma once
// The Tokenizer concept: what model, dataset and generation code needs from a tokenizer.
//
//   template <p4lm::text::Tokenizer Tok> void f(const Tok& tok);
//   static_assert(p4lm::text::check_tokenizer<MyTokenizer>());   // says which member is missing
//
// A type satisfies it with these const members (see docs/tokenizers.md):
//   std::vector<std::int32_t> encode(std::string_view text)        ids for text (model's default
//                                                                   BOS convention included)
//   std::string decode(std::span<const std::int32_t> ids)          text for ids
//   std::size_t vocab_size()                                       number of ids (embedding rows)
//   std::optional<std::int32_t> bos_id(), eos_id()                 special ids, nullopt if none
// Gpt2Tokenizer and Llama2cTokenizer both do.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p4lm::text {

template <class T>
concept Tokenizer = requires(const T& t, std::string_view text, std::span<const std::int32_t> ids) {
  { t.encode(text) } -> std::same_as<std::vector<std::int32_t>>;
  { t.decode(ids) } -> std::same_as<std::string>;
  { t.vocab_size() } -> std::convertible_to<std::size_t>;
  { t.bos_id() } -> std::same_as<std::optional<std::int32_t>>;
  { t.eos_id() } -> std::same_as<std::optional<std::int32_t>>;
};

// One static_assert per requirement, so a failing type gets a sentence, not a concept dump.
template <class T>
constexpr bool check_tokenizer() {
  static_assert(
      requires(const T& t, std::string_view s) {
        { t.encode(s) } -> std::same_as<std::vector<std::int32_t>>;
      },
      "p4lm Tokenizer: needs a const member `std::vector<std::int32_t> encode(std::string_view)` "
      "(docs/tokenizers.md)");
  static_assert(
      requires(const T& t, std::span<const std::int32_t> ids) {
        { t.decode(ids) } -> std::same_as<std::string>;
      },
      "p4lm Tokenizer: needs a const member `std::string decode(std::span<const std::int32_t>)` "
      "(docs/tokenizers.md)");
  static_assert(
      requires(const T& t) {
        { t.vocab_size() } -> std::convertible_to<std::size_t>;
      },
      "p4lm Tokenizer: needs a const member `std::size_t vocab_size()` (docs/tokenizers.md)");
  static_assert(
      requires(const T& t) {
        { t.bos_id() } -> std::same_as<std::optional<std::int32_t>>;
        { t.eos_id() } -> std::same_as<std::optional<std::int32_t>>;
      },
      "p4lm Tokenizer: needs const members `std::optional<std::int32_t> bos_id()` and `eos_id()` "
      "(std::nullopt when the vocabulary has none; docs/tokenizers.md)");
  return Tokenizer<T>;
}

}  // namespace p4lm::text
