#pragma once
// How the SFT prompt and the pitch are laid out in tokens, per base model:
//
//   plain    [BOS] prompt "\n" marker | pitch [EOS]                      (stories260K, GPT-2, scratch)
//   chatml   <|im_start|> "user\n" prompt "\n" marker <|im_end|> "\n" <|im_start|> "assistant\n"
//            | pitch <|im_end|>                                          (SmolLM2-Instruct, GGUF)
//
// ChatML is the instruct model's own conversation format (text/chat_template.hpp): the SFT prompt is
// the user's turn and the pitch the assistant's, so fine-tuning starts from a layout the model
// answers in. The codec's BOS is <|im_start|> and its EOS <|im_end|> (the GGUF's bos and eos ids),
// so generation stops where the assistant's turn ends, and the soft-prompt layout [BOS, soft tokens,
// rest] (soft_prompt.hpp) keeps the turn's opening token at position 0. There is no system turn: its
// tokens would be paid on every sequence and say nothing the fine-tuning does not.
//
//   auto ids = p4lm::train::format_prompt(codec, PromptFormat::chatml, "Heat (1995). ...", options);
//   auto seq = p4lm::train::format_example(codec, PromptFormat::chatml, prompt, pitch, options, span);

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "p4lm/core/error.hpp"
#include "p4lm/train/sft_data.hpp"

namespace p4lm::train {

enum class PromptFormat { plain, chatml };

inline const char* to_string(PromptFormat f) {
  return f == PromptFormat::chatml ? "chatml" : "plain";
}
// Files written before the format was recorded hold none: "plain".
inline PromptFormat parse_prompt_format(std::string_view s) {
  if (s.empty() || s == "plain") return PromptFormat::plain;
  if (s == "chatml") return PromptFormat::chatml;
  fail<InvalidArgument>("prompt format '", s, "': expected plain or chatml");
}

// The task in words, for a base model prompted with no fine-tuning (Table 1's Base row, the analogue
// of the paper's prompted PaLM 2-L): fine-tuning teaches the task by example; a model without it is
// told, before the prompt SFT-Text trains on (text_prompt: the profile, then the movie).
inline constexpr std::string_view zero_shot_instruction =
    "Write a short pitch (two or three sentences) of the movie below for this viewer: say what the movie "
    "is about and why this viewer in particular would enjoy it.";

inline std::string zero_shot_prompt(std::string_view profile, std::string_view item) {
  return std::string(zero_shot_instruction) + "\n" + text_prompt(profile, item);
}

// Prompt ids (what a generator starts from): BOS first in both formats. The prompt text is truncated
// to fit max_prompt_tokens with everything around it.
inline std::vector<std::int32_t> format_prompt(const TextCodec& codec, PromptFormat f,
                                               std::string_view prompt, const PromptOptions& o) {
  if (f == PromptFormat::plain) return encode_prompt(codec, prompt, o);
  // The special tokens by id (the codec's BOS and EOS), so nothing depends on special-token parsing.
  std::vector<std::int32_t> head{codec.bos}, tail = codec.encode("\n" + o.marker);
  const auto user = codec.encode("user\n"), newline = codec.encode("\n"),
             assistant = codec.encode("assistant\n");
  head.insert(head.end(), user.begin(), user.end());
  tail.push_back(codec.eos);
  tail.insert(tail.end(), newline.begin(), newline.end());
  tail.push_back(codec.bos);
  tail.insert(tail.end(), assistant.begin(), assistant.end());
  if (o.max_prompt_tokens < head.size() + tail.size() + 1)
    fail<InvalidArgument>("PromptOptions: max_prompt_tokens ", o.max_prompt_tokens,
                          " leaves no room for a prompt in the chat format (", head.size() + tail.size(),
                          " tokens around it)");
  auto body = codec.encode(prompt);
  const std::size_t room = o.max_prompt_tokens - head.size() - tail.size();
  if (body.size() > room) body.resize(room);
  head.insert(head.end(), body.begin(), body.end());
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// One training sequence: the prompt as format_prompt lays it out, then the pitch and EOS exactly as
// encode_example (sft_data.hpp) encodes them, with the link sentence's token range moved along.
inline SftSequence format_example(const TextCodec& codec, PromptFormat f, std::string_view prompt,
                                  std::string_view full_pitch, const PromptOptions& o,
                                  std::span<const std::size_t> link_span = {}) {
  SftSequence s = encode_example(codec, prompt, full_pitch, o, link_span);
  if (f == PromptFormat::plain) return s;
  const auto ids = format_prompt(codec, f, prompt, o);
  const auto shift = [&](std::uint32_t at) {
    return static_cast<std::uint32_t>(at - s.prompt_len + ids.size());
  };
  if (s.link_end > s.link_begin) s.link_begin = shift(s.link_begin), s.link_end = shift(s.link_end);
  s.ids.erase(s.ids.begin(), s.ids.begin() + s.prompt_len);
  s.ids.insert(s.ids.begin(), ids.begin(), ids.end());
  s.prompt_len = static_cast<std::uint32_t>(ids.size());
  if (s.link_end <= s.link_begin) s.link_begin = s.link_end = 0;
  return s;
}

}  // namespace p4lm::train
