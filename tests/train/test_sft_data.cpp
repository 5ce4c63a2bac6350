// SFT data preparation on long pitches: the pitch is cut before it is encoded, so a 200 KB pitch costs
// what a short one does, and the kept tokens (and the link sentence's tokens) are those the whole
// pitch's encoding would give.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "p4lm/text/gpt2_tokenizer.hpp"
#include "p4lm/text/llama2c_tokenizer.hpp"
#include "p4lm/train/sft_data.hpp"

using namespace p4lm;
using namespace p4lm::train;

namespace {
TextCodec llama2c_codec() {
  auto tok = std::make_shared<text::Llama2cTokenizer>(text::Llama2cTokenizer::bundled());
  TextCodec c;
  c.encode = [tok](std::string_view s) { return tok->encode(s, {.bos = false, .eos = false}); };
  c.decode = [tok](std::span<const std::int32_t> ids) { return tok->decode(ids); };
  c.bos = text::Llama2cTokenizer::bos, c.eos = text::Llama2cTokenizer::eos;
  return c;
}
TextCodec gpt2_codec() {
  auto tok = std::make_shared<text::Gpt2Tokenizer>(text::Gpt2Tokenizer::bundled());
  TextCodec c;
  c.encode = [tok](std::string_view s) { return tok->encode(s); };
  c.decode = [tok](std::span<const std::int32_t> ids) { return tok->decode(ids); };
  c.bos = c.eos = text::Gpt2Tokenizer::eot;
  return c;
}

// Counts the bytes and tokens the codec is asked to process: the cost of preparing an example, measured
// without a clock. Once a pitch is longer than its kept tokens need, the cost must not grow with it.
struct Counted {
  std::shared_ptr<std::size_t> work = std::make_shared<std::size_t>(0);
  TextCodec codec;
  explicit Counted(TextCodec inner) : codec(inner) {
    codec.encode = [w = work, f = inner.encode](std::string_view s) {
      *w += s.size();
      return f(s);
    };
    codec.decode = [w = work, f = inner.decode](std::span<const std::int32_t> ids) {
      *w += ids.size();
      return f(ids);
    };
  }
};

std::string long_pitch(std::size_t bytes) {
  const std::string sentences[] = {
      "Heat is a crime epic where a driven detective hunts a master thief. ",
      "You loved Ronin, so the shootout downtown will grab you! ",
      "Nobody plays a professional like De Niro; Pacino matches him scene for scene. "};
  std::string s;
  for (std::size_t k = 0; s.size() < bytes; ++k) s += sentences[k % 3];
  return s;
}

// What encode_example computed before the cut: the whole pitch encoded, then truncated.
std::pair<std::vector<std::int32_t>, std::pair<std::size_t, std::size_t>> reference(
    const TextCodec& codec, const std::string& pitch, std::size_t max_pitch, std::size_t b, std::size_t e) {
  auto p = codec.encode(pitch);
  const auto [first, last] = tokens_covering(codec, pitch, p, b, e);
  const std::size_t kept = std::min(p.size(), max_pitch - 1);
  p.resize(kept);
  return {p, {std::min(first, kept), std::min(last, kept)}};
}
}  // namespace

TEST_CASE("sft data: a 200 KB pitch is cut before it is encoded", "[train][sft][sft_data]") {
  const auto codec = llama2c_codec();
  const PromptOptions o{};  // 200 pitch tokens
  const std::string pitch = long_pitch(200'000);
  const std::vector<std::size_t> span{68, 126};  // the second sentence
  const Counted counted(codec), short_counted(codec);
  const auto seq = encode_example(counted.codec, "Heat (1995). Crime.", pitch, o, span);
  encode_example(short_counted.codec, "Heat (1995). Crime.", long_pitch(20'000), o, span);
  INFO("bytes and tokens processed: " << *counted.work << " (200 KB), " << *short_counted.work << " (20 KB)");
  CHECK(*counted.work == *short_counted.work);      // decoding every prefix of the whole pitch grew with it
  CHECK(seq.pitch_tokens() == o.max_pitch_tokens);  // 199 pitch tokens + EOS
  CHECK(seq.ids.back() == codec.eos);

  // The same tokens as encoding the whole pitch (checked on a 6 KB pitch, where that is affordable).
  const std::string medium = long_pitch(6'000);
  for (const auto& c : {codec, gpt2_codec()}) {
    const auto got = encode_example(c, "Heat.", medium, o, span);
    const auto [ids, link] = reference(c, medium, o.max_pitch_tokens, span[0], span[1]);
    const std::vector<std::int32_t> pitch_ids(got.ids.begin() + got.prompt_len, got.ids.end() - 1);
    CHECK(pitch_ids == ids);
    CHECK(got.link_begin - got.prompt_len == link.first);
    CHECK(got.link_end - got.prompt_len == link.second);
    CHECK(got.link_end > got.link_begin);
  }
  // A link sentence past the cut keeps nothing of it.
  const std::vector<std::size_t> late{150'000, 150'050};
  const auto cut = encode_example(codec, "Heat.", pitch, o, late);
  CHECK(cut.link_begin == cut.link_end);
}

TEST_CASE("sft data: a long pitch without spaces is cut too", "[train][sft][sft_data]") {
  const auto codec = llama2c_codec();
  PromptOptions o;
  o.max_pitch_tokens = 50;
  std::string pitch;
  while (pitch.size() < 200'000) pitch += "abcdéfgh";  // multi-byte characters: cut between them
  const Counted counted(codec), short_counted(codec);
  const auto seq = encode_example(counted.codec, "x", pitch, o);
  encode_example(short_counted.codec, "x", pitch.substr(0, 20'000), o);
  INFO("bytes and tokens processed: " << *counted.work << " (200 KB), " << *short_counted.work << " (20 KB)");
  CHECK(*counted.work == *short_counted.work);
  CHECK(seq.pitch_tokens() == 50);
  const auto [ids, link] = reference(codec, pitch.substr(0, 4000), 50, 0, 0);
  CHECK(std::vector<std::int32_t>(seq.ids.begin() + seq.prompt_len, seq.ids.end() - 1) == ids);
}
