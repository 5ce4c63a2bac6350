#pragma once
// The ChatML prompt format (SmolLM2, Qwen, ...): each message is
//   <|im_start|>{role}\n{content}<|im_end|>\n
// and a generation prompt ends with "<|im_start|>assistant\n". SmolLM2's template (the GGUF key
// tokenizer.chat_template, a Jinja text) inserts a default system message when the first message
// is not a system one; ChatTemplate::from_gguf takes that text from the template.
//
//   auto chat = p4lm::text::ChatTemplate::from_gguf(f);
//   std::string prompt = chat.format({{"user", "Recommend a movie about space"}});
//   auto ids = tok.encode(prompt);   // the tokenizer recognises <|im_start|> and <|im_end|>
//
// Generation stops at <|im_end|> (the GGUF's eos id for SmolLM2).

#include <string>
#include <string_view>
#include <vector>

#include "p4lm/io/gguf.hpp"

namespace p4lm::text {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct ChatTemplate {
  std::string default_system;  // inserted when the first message is not "system"; empty: none

  static constexpr std::string_view im_start = "<|im_start|>";
  static constexpr std::string_view im_end = "<|im_end|>";

  std::string format(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const {
    std::string out;
    if (!default_system.empty() && (messages.empty() || messages.front().role != "system"))
      append(out, "system", default_system);
    for (const auto& m : messages) append(out, m.role, m.content);
    if (add_generation_prompt) (out += im_start) += "assistant\n";
    return out;
  }

  // From the GGUF's tokenizer.chat_template: ChatML with the default system message it names, if any.
  static ChatTemplate from_gguf(const io::GgufFile& f) {
    ChatTemplate t;
    const auto jinja = f.get_or<std::string>("tokenizer.chat_template", "");
    const std::string marker = std::string(im_start) + "system\n";
    if (const auto at = jinja.find(marker); at != std::string::npos) {
      const auto begin = at + marker.size();
      if (const auto end = jinja.find(im_end, begin); end != std::string::npos)
        t.default_system = jinja.substr(begin, end - begin);
    }
    return t;
  }

 private:
  static void append(std::string& out, std::string_view role, std::string_view content) {
    (((out += im_start) += role) += '\n');
    ((out += content) += im_end) += '\n';
  }
};

}  // namespace p4lm::text
