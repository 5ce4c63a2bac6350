#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/io/atomic_file.hpp>
#include <p4lm/text/gpt2_tokenizer.hpp>

namespace fs = std::filesystem;
using p4lm::text::Gpt2Tokenizer;

namespace {

// Loading parses a 1 MB JSON file: do it once per test program.
const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer tok = Gpt2Tokenizer::bundled();
  return tok;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> pieces;
  p4lm::text::gpt2_pretokenize(text, [&](std::string_view p) { pieces.emplace_back(p); });
  return pieces;
}

std::string show(const std::vector<std::int32_t>& ids) {
  return nlohmann::json(ids).dump();
}

}  // namespace

TEST_CASE("GPT-2 pre-tokenizer splits where the reference regex does", "[text][gpt2]") {
  // Expected pieces printed by Python's `regex` module running encoder.py's pattern on each string.
  using V = std::vector<std::string>;
  CHECK(split("Hello world's  end\n\n x") == V{"Hello", " world", "'s", " ", " end", "\n\n", " x"});
  CHECK(split("I'll've  '' 's") == V{"I", "'ll", "'ve", " ", " ''", " '", "s"});
  CHECK(split("a\t\tb  \n") == V{"a", "\t", "\t", "b", "  \n"});
  CHECK(split(" 123abc!!? ") == V{" 123", "abc", "!!?", " "});
  CHECK(split("na\u00efve caf\u00e9\u00a0x \u3000y") ==
        V{"na\u00efve", " caf\u00e9", "\u00a0", "x", " ", "\u3000", "y"});
  CHECK(split("x\u200by") == V{"x", "\u200b", "y"});
  CHECK(split("\r\n\r\nA") == V{"\r\n\r", "\n", "A"});
  CHECK(split("   ") == V{"   "});
  CHECK(split("''s") == V{"''", "s"});
  CHECK(split("").empty());
  // Invalid UTF-8: each bad byte is an "other" code point, so it joins a run of punctuation.
  CHECK(split("a\xff\xfe!b") == V{"a", "\xff\xfe!", "b"});
  CHECK(split("\xe2\x82 x") == V{"\xe2\x82", " x"});  // truncated 3-byte sequence
}

TEST_CASE("GPT-2 tokenizer loads the bundled vocabulary", "[text][gpt2]") {
  const auto& tok = gpt2();
  CHECK(tok.vocab_size() == 50257);
  CHECK(tok.merge_count() == 50000);
  CHECK(tok.eot_id() == 50256);
  CHECK(tok.bos_id() == 50256);
  CHECK(tok.eos_id() == 50256);
  CHECK(tok.token_bytes(50256) == "<|endoftext|>");
  CHECK(tok.token_bytes(220) == " ");
  CHECK(tok.token_id(" world") == 995);
  CHECK_THROWS_WITH(tok.token_bytes(50257), Catch::Contains("token id 50257 outside the vocabulary"));
  CHECK_THROWS_AS(tok.decode(std::vector<std::int32_t>{-1}), p4lm::InvalidArgument);
}

TEST_CASE("GPT-2 tokenizer reproduces every published test vector", "[text][gpt2]") {
  const auto path = p4lm::data_path("gpt2-tokenizer/test_vectors_published.json");
  const auto records = nlohmann::json::parse(p4lm::io::read_file(path));
  REQUIRE(records.size() == 26);
  for (const auto& r : records) {
    const auto text = r["text"].get<std::string>();
    const auto expected = r["ids"].get<std::vector<std::int32_t>>();
    const bool special = r["mode"].get<std::string>().starts_with("special");
    const auto ids = special ? gpt2().encode_with_special(text) : gpt2().encode(text);
    INFO("text: " << nlohmann::json(text).dump() << " mode: " << r["mode"].get<std::string>());
    CHECK(show(ids) == show(expected));
    CHECK(gpt2().decode(ids) == text);
  }
}

TEST_CASE("GPT-2 tokenizer reproduces all 11,390 generated test vectors", "[text][gpt2]") {
  const auto path = p4lm::data_path("gpt2-tokenizer/test_vectors_generated.jsonl");
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::size_t count = 0, mismatches = 0, round_trip_failures = 0;
  std::ostringstream first;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto r = nlohmann::json::parse(line);
    const auto text = r["text"].get<std::string>();
    const auto expected = r["ids"].get<std::vector<std::int32_t>>();
    const auto ids = gpt2().encode(text);
    ++count;
    // Counted rather than CHECKed one by one: 11k assertions would dominate the sanitizer run.
    if (ids != expected && mismatches++ < 5)
      first << "\n  " << nlohmann::json(text).dump() << ": got " << show(ids) << " expected "
            << show(expected);
    if (gpt2().decode(ids) != text) ++round_trip_failures;
  }
  INFO("first mismatches:" << first.str());
  CHECK(count == 11390);
  CHECK(mismatches == 0);
  CHECK(round_trip_failures == 0);
}

TEST_CASE("GPT-2 tokenizer treats <|endoftext|> as text unless asked", "[text][gpt2]") {
  const auto& tok = gpt2();
  const auto plain = tok.encode("a<|endoftext|>b");
  CHECK(std::find(plain.begin(), plain.end(), 50256) == plain.end());
  CHECK(tok.decode(plain) == "a<|endoftext|>b");
  const auto special = tok.encode_with_special("a<|endoftext|>b<|endoftext|>");
  CHECK(std::count(special.begin(), special.end(), 50256) == 2);
  CHECK(tok.decode(special) == "a<|endoftext|>b<|endoftext|>");
  CHECK(special.back() == 50256);
  const std::string_view bogus[] = {"<|im_start|>"};
  CHECK_THROWS_WITH(tok.encode_with_special("x", bogus), Catch::Contains("not a special token"));
}

TEST_CASE("GPT-2 tokenizer round-trips random byte strings, invalid UTF-8 included", "[text][gpt2][fuzz]") {
  const auto& tok = gpt2();
  std::mt19937 rng(20231006);
  // Fragments that stress the scanner: contractions, spaces, multi-byte and truncated sequences.
  const std::vector<std::string> fragments = {"'s",
                                              "'ll",
                                              " ",
                                              "  ",
                                              "\n",
                                              "\t",
                                              "a",
                                              "Z",
                                              "7",
                                              "!",
                                              "\xc3\xa9",
                                              "\xe4\xb8\xad",
                                              "\xf0\x9f\x8c\x8d",
                                              "\xe2\x80",
                                              "\xf0\x9f",
                                              "\xc0\xaf",
                                              "\xed\xa0\x80",
                                              "\xf4\x90\x80\x80",
                                              "\xa0",
                                              "\xff",
                                              "\x00"};
  std::uniform_int_distribution<int> length(0, 48), byte(0, 255), pick(0, 3);
  std::uniform_int_distribution<std::size_t> fragment(0, fragments.size() - 1);
  std::size_t failures = 0;
  std::string first_failure;
  for (int n = 0; n < 4000; ++n) {
    std::string text;
    const int len = length(rng);
    for (int i = 0; i < len; ++i) {
      if (pick(rng) == 0)
        text += fragments[fragment(rng)];
      else
        text += static_cast<char>(byte(rng));
    }
    const auto ids = tok.encode(text);
    bool ok = tok.decode(ids) == text;
    for (const auto id : ids) ok = ok && id >= 0 && id < 50256;
    if (!ok && failures++ == 0) first_failure = text;
  }
  INFO("first failing input has " << first_failure.size() << " bytes");
  CHECK(failures == 0);
}

TEST_CASE("GPT-2 tokenizer files that are not GPT-2's are rejected with the file named", "[text][gpt2]") {
  const auto dir = fs::temp_directory_path() / "p4lm_test_gpt2_bad";
  fs::remove_all(dir);
  p4lm::io::write_file_atomically(dir / "encoder.json", "{\"a\": 0,");
  p4lm::io::write_file_atomically(dir / "vocab.bpe", "#version: 0.2\na b\n");
  CHECK_THROWS_WITH(Gpt2Tokenizer::from_folder(dir),
                    Catch::Contains("encoder.json") && Catch::Contains("invalid JSON"));
  p4lm::io::write_file_atomically(dir / "encoder.json", "{\"a\": 0}");
  CHECK_THROWS_WITH(Gpt2Tokenizer::from_folder(dir), Catch::Contains("no token for byte"));
  // A real encoder with a malformed merge line: the message names vocab.bpe and the line.
  fs::copy_file(p4lm::data_path("gpt2-tokenizer/encoder.json"), dir / "encoder.json",
                fs::copy_options::overwrite_existing);
  p4lm::io::write_file_atomically(dir / "vocab.bpe", "#version: 0.2\n\xc4\xa0 t\nbroken\n");
  CHECK_THROWS_WITH(Gpt2Tokenizer::from_folder(dir), Catch::Contains("vocab.bpe:3"));
  CHECK_THROWS_AS(Gpt2Tokenizer::from_folder(dir / "missing"), p4lm::IoError);
  fs::remove_all(dir);
}

TEST_CASE("GPT-2 pre-tokenizer agrees with Python regex at every Unicode class boundary", "[text][gpt2]") {
  // Fixture from scripts/gen_pretokenizer_fixture.py: 1,500 random strings built from the first and
  // last code point of each run in the class table, split by the `regex` module.
  std::ifstream in(fs::path(P4LM_TEST_FIXTURES_DIR) / "text" / "gpt2_pretokenizer_random.jsonl",
                   std::ios::binary);
  REQUIRE(in);
  std::size_t count = 0, mismatches = 0;
  std::string first;
  for (std::string line; std::getline(in, line);) {
    const auto r = nlohmann::json::parse(line);
    const auto text = r["text"].get<std::string>();
    const auto expected = r["pieces"].get<std::vector<std::string>>();
    ++count;
    if (split(text) != expected && mismatches++ == 0)
      first = nlohmann::json(text).dump() + " -> " + nlohmann::json(split(text)).dump() + ", expected " +
              nlohmann::json(expected).dump();
    const auto ids = gpt2().encode(text);
    if (gpt2().decode(ids) != text && mismatches++ == 0)
      first = "round trip of " + nlohmann::json(text).dump();
  }
  INFO("first mismatch: " << first);
  CHECK(count == 1500);
  CHECK(mismatches == 0);
}
