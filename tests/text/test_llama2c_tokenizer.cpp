#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/io/atomic_file.hpp>
#include <p4lm/text/llama2c_tokenizer.hpp>

namespace fs = std::filesystem;
using p4lm::text::Llama2cTokenizer;
using Ids = std::vector<std::int32_t>;

namespace {
const Llama2cTokenizer& stories() {
  static const Llama2cTokenizer tok = Llama2cTokenizer::bundled();
  return tok;
}

// A literal transcription of run.c's encode() (string concatenation + lookup, O(n^2) merge loop),
// restricted like p4lm to ordinary pieces, to check the heap-based merge against.
Ids run_c_encode(const Llama2cTokenizer& tok, const std::string& text) {
  std::map<std::string, std::int32_t> lookup;
  for (std::int32_t id = 3; id < static_cast<std::int32_t>(tok.vocab_size()); ++id)
    if (!(tok.piece(id).size() == 6 && tok.piece(id).starts_with("<0x"))) lookup.emplace(tok.piece(id), id);
  Ids tokens = {1};
  if (!text.empty()) tokens.push_back(lookup.at(" "));
  std::string buffer;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) buffer.clear();
    buffer += text[i];
    if (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 && buffer.size() < 4)
      continue;
    if (const auto it = lookup.find(buffer); it != lookup.end())
      tokens.push_back(it->second);
    else
      for (const char c : buffer) tokens.push_back(static_cast<unsigned char>(c) + 3);
    buffer.clear();
  }
  while (true) {
    float best_score = -1e10f;
    std::int32_t best_id = -1;
    std::size_t best_idx = 0;
    for (std::size_t i = 1; i + 1 < tokens.size(); ++i) {  // index 0 is BOS
      const auto it = lookup.find(tok.piece(tokens[i]) + tok.piece(tokens[i + 1]));
      if (it != lookup.end() && tok.score(it->second) > best_score)
        best_score = tok.score(it->second), best_id = it->second, best_idx = i;
    }
    if (best_id == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
  }
  return tokens;
}
}  // namespace

TEST_CASE("llama2.c tokenizer reads tok512.bin", "[text][llama2c]") {
  const auto& tok = stories();
  CHECK(tok.vocab_size() == 512);
  CHECK(tok.max_token_length() == 7);
  CHECK(tok.piece(0) == "<unk>");
  CHECK(tok.piece(1) == "\n<s>\n");
  CHECK(tok.piece(2) == "\n</s>\n");
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.piece(258) == "<0xFF>");
  CHECK(tok.piece(259) == " t");
  CHECK(tok.score(260) == -1.0f);
  CHECK(tok.byte_token(0x41) == 0x41 + 3);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK_THROWS_WITH(tok.piece(512), Catch::Contains("token id 512 outside the vocabulary"));
}

TEST_CASE("llama2.c tokenizer: hand-checked encodings", "[text][llama2c]") {
  const auto& tok = stories();
  // "a": symbols [" " (dummy prefix, id 410), "a"]; " a" is piece 261, so one merge.
  CHECK(tok.encode("a") == Ids{1, 261});
  CHECK(tok.encode("a", {.bos = false, .eos = true}) == Ids{261, 2});
  CHECK(tok.encode("") == Ids{1});
  CHECK(tok.encode("", {.bos = false}).empty());
  // "中" (E4 B8 AD) is not a piece: byte fallback to <0xE4> <0xB8> <0xAD> = byte + 3.
  CHECK(tok.encode("\xe4\xb8\xad", {.bos = false}) == Ids{410, 0xE4 + 3, 0xB8 + 3, 0xAD + 3});
  // Pieces that look like byte or control tokens are text, not tokens.
  const auto ids = tok.encode("<0x41><unk>");
  CHECK(tok.decode(ids) == "<0x41><unk>");
  CHECK(std::find(ids.begin(), ids.end(), 0x41 + 3) == ids.end());
}

TEST_CASE("llama2.c tokenizer matches SentencePiece on tok512.model", "[text][llama2c]") {
  // Fixture written by scripts/gen_llama2c_tokenizer_fixture.py with the sentencepiece package.
  const auto j = nlohmann::json::parse(
      p4lm::io::read_file(fs::path(P4LM_TEST_FIXTURES_DIR) / "text" / "stories260K_sentencepiece.json"));
  const auto& records = j["records"];
  REQUIRE(records.size() >= 30);
  std::size_t collapsed = 0;
  for (const auto& r : records) {
    const auto text = r["text"].get<std::string>();
    const auto expected = r["ids"].get<Ids>();
    INFO("text: " << nlohmann::json(text).dump());
    const auto ids = stories().encode(text, {.bos = false});
    if (r["same_normalization"].get<bool>())
      CHECK(nlohmann::json(ids).dump() == nlohmann::json(expected).dump());
    else
      ++collapsed;
    CHECK(stories().decode(stories().encode(text)) == text);
  }
  CHECK(collapsed == 4);  // the whitespace-run records, checked by hand below
}

TEST_CASE("llama2.c tokenizer keeps whitespace runs that SentencePiece's normalizer collapses",
          "[text][llama2c]") {
  const auto& tok = stories();
  // run.c encodes raw text: the dummy prefix (410 = " ") plus each space that no merge absorbs.
  CHECK(tok.encode(" ", {.bos = false}) == Ids{410, 410});
  CHECK(tok.encode("  ", {.bos = false}) == Ids{410, 410, 410});
  // " a" (261), " " (410), " b" (268), "\n" twice by byte fallback (0x0A + 3 = 13), "c" (429).
  CHECK(tok.encode("a  b\n\nc", {.bos = false}) == Ids{261, 410, 268, 13, 13, 429});
}

TEST_CASE("llama2.c tokenizer decodes like run.c", "[text][llama2c]") {
  const auto& tok = stories();
  const auto ids = tok.encode("Once upon a time");
  REQUIRE(ids.size() > 2);
  CHECK(ids.front() == 1);
  CHECK(tok.decode(ids) == "Once upon a time");
  // Without BOS the dummy-prefix space stays, as run.c prints it.
  CHECK(tok.decode(std::span(ids).subspan(1)) == " Once upon a time");
  CHECK(tok.decode_piece(1, ids[1]) == tok.piece(ids[1]).substr(1));
  CHECK(tok.decode_piece(ids[1], ids[2]) == tok.piece(ids[2]));
  CHECK(tok.decode(Ids{1, 0x0A + 3, 2}) == "\n");  // <0x0A> is a newline byte; BOS/EOS print nothing
  CHECK_THROWS_AS(tok.decode(Ids{600}), p4lm::InvalidArgument);
}

TEST_CASE("llama2.c tokenizer merges exactly as run.c's quadratic loop", "[text][llama2c]") {
  const auto& tok = stories();
  const auto story = p4lm::io::read_file(p4lm::data_path("tiny-lm/stories260K/expected_greedy_200steps.txt"));
  CHECK(tok.encode(story) == run_c_encode(tok, story));
  std::mt19937 rng(5);
  const std::string alphabet = "abcdehilnorstwy  ,.'\n";
  std::uniform_int_distribution<std::size_t> letter(0, alphabet.size() - 1), length(0, 60);
  std::size_t mismatches = 0;
  for (int n = 0; n < 300; ++n) {
    std::string text;
    for (auto i = length(rng); i > 0; --i) text += alphabet[letter(rng)];
    mismatches += tok.encode(text) != run_c_encode(tok, text);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("llama2.c tokenizer round-trips random bytes", "[text][llama2c][fuzz]") {
  const auto& tok = stories();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> length(0, 40), byte(0, 255), ascii(32, 126), pick(0, 2);
  std::size_t failures = 0;
  for (int n = 0; n < 3000; ++n) {
    std::string text;
    for (int i = length(rng); i > 0; --i) text += static_cast<char>(pick(rng) ? ascii(rng) : byte(rng));
    const auto ids = tok.encode(text);
    bool ok = tok.decode(ids) == text;
    for (const auto id : ids) ok = ok && id >= 0 && id < 512;
    failures += !ok;
  }
  CHECK(failures == 0);
}

TEST_CASE("llama2.c tokenizer files that are truncated are rejected with file and token", "[text][llama2c]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_llama2c_tok";
  fs::remove_all(dir);
  const auto full = p4lm::io::read_file(p4lm::data_path("tiny-lm/stories260K/tok512.bin"));
  p4lm::io::write_file_atomically(dir / "tok.bin", std::string_view(full).substr(0, full.size() - 3));
  CHECK_THROWS_WITH(Llama2cTokenizer::from_file(dir / "tok.bin"),
                    Catch::Contains("tok.bin") && Catch::Contains("inside token 511"));
  p4lm::io::write_file_atomically(dir / "tok.bin", std::string("\x07\0\0\0\0\0\0\0\x7f\0\0\0", 12));
  CHECK_THROWS_WITH(Llama2cTokenizer::from_file(dir / "tok.bin"), Catch::Contains("has length 127"));
  CHECK_THROWS_AS(Llama2cTokenizer::from_file(dir / "missing.bin"), p4lm::IoError);
  CHECK_THROWS_AS(Llama2cTokenizer::from_file(dir), p4lm::IoError);  // a folder, not a file
  fs::remove_all(dir);
}
