#pragma once
// The sentences the rewards read a pitch as: Precision checks each against the movie, Personalization
// scores each against the profile. Deliberately simpler than data::split_sentences (which knows
// abbreviations, for the catalog's overviews): a pitch is generated text, and a split inside
// "Mr. Smith" only adds a sentence.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace p4lm::reward {

// Sentences of a pitch: split after '.', '!' or '?' followed by a space (or the end); trimmed, empty
// pieces dropped. Years and titles with inner dots ("Mr. Smith") split too, which only adds a claim.
inline std::vector<std::string> split_sentences(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  const auto push = [&](std::size_t end) {
    auto s = text.substr(start, end - start);
    const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    if (b != std::string_view::npos) out.emplace_back(s.substr(b, e - b + 1));
  };
  for (std::size_t i = 0; i < text.size(); ++i)
    if ((text[i] == '.' || text[i] == '!' || text[i] == '?') &&
        (i + 1 == text.size() || text[i + 1] == ' ')) {
      push(i + 1);
      start = i + 1;
    }
  push(text.size());
  return out;
}

}  // namespace p4lm::reward
