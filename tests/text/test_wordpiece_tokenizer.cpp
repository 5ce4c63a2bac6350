#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/error.hpp>
#include <p4lm/text/tokenizer.hpp>
#include <p4lm/text/wordpiece_tokenizer.hpp>

#include "skip.hpp"

namespace fs = std::filesystem;
using p4lm::text::WordPieceTokenizer;

static_assert(p4lm::text::check_tokenizer<WordPieceTokenizer>());

namespace {

fs::path minilm_dir() {
  const char* env = std::getenv("P4LM_MODELS");
  const fs::path models =
      env && *env ? fs::path(env) : fs::path(P4LM_TEST_FIXTURES_DIR) / ".." / ".." / "models";
  return models / "all-minilm-l6-v2";
}

bool minilm_present() {
  return fs::exists(minilm_dir() / "tokenizer.json");
}

#define REQUIRE_MINILM()                                                   \
  if (!minilm_present())                                                   \
  P4LM_SKIP("all-MiniLM-L6-v2 not in " << minilm_dir().string()            \
                                       << ": run scripts/fetch-models.sh " \
                                          "or set P4LM_MODELS")

std::vector<nlohmann::json> fixture_cases() {
  std::ifstream in(fs::path(P4LM_TEST_FIXTURES_DIR) / "text" / "wordpiece_minilm.jsonl");
  REQUIRE(in);
  std::vector<nlohmann::json> cases;
  std::string line;
  while (std::getline(in, line))
    if (auto j = nlohmann::json::parse(line); !j.contains("meta")) cases.push_back(std::move(j));
  return cases;
}

std::string tokens_of(const WordPieceTokenizer& tok, const std::vector<std::int32_t>& ids) {
  std::string s;
  for (const auto id : ids) s += tok.token(id) + " ";
  return s;
}

}  // namespace

TEST_CASE("WordPieceTokenizer: ids identical to Hugging Face tokenizers on the fixture", "[wordpiece]") {
  REQUIRE_MINILM();
  const auto tok = WordPieceTokenizer::from_folder(minilm_dir());
  CHECK(tok.vocab_size() == 30522);
  const auto cases = fixture_cases();
  REQUIRE(cases.size() >= 1000);
  std::size_t pairs = 0, decoded = 0, mismatches = 0;
  for (const auto& c : cases) {
    const auto text = c["text"].get<std::string>();
    const auto max_length = c["max_length"].get<std::size_t>();
    const auto want = c["ids"].get<std::vector<std::int32_t>>();
    p4lm::text::WordPieceEncoding got;
    if (c.contains("pair")) {
      ++pairs;
      got = tok.encode_pair(text, c["pair"].get<std::string>(), max_length);
      CHECK(got.type_ids == c["type_ids"].get<std::vector<std::int32_t>>());
    } else {
      got = tok.encode_single(text, max_length);
      CHECK(got.type_ids == std::vector<std::int32_t>(got.ids.size(), 0));
    }
    if (got.ids != want) {
      ++mismatches;
      INFO("text: " << nlohmann::json(text).dump()
                    << "\nnormalized: " << nlohmann::json(tok.normalize(text)).dump()
                    << "\nwant: " << tokens_of(tok, want) << "\ngot:  " << tokens_of(tok, got.ids));
      CHECK(got.ids == want);
    }
    if (c.contains("decoded")) {
      ++decoded;
      CHECK(tok.decode(got.ids) == c["decoded"].get<std::string>());
    }
  }
  CHECK(mismatches == 0);
  CHECK(pairs >= 100);
  CHECK(decoded >= 300);
}

TEST_CASE("WordPieceTokenizer: concept members, batches and max_length", "[wordpiece]") {
  REQUIRE_MINILM();
  auto tok = WordPieceTokenizer::from_folder(minilm_dir());
  CHECK(tok.max_length() == 128);  // all-MiniLM-L6-v2's tokenizer.json truncates at 128
  CHECK(tok.bos_id() == tok.cls_id());
  CHECK(tok.eos_id() == tok.sep_id());
  CHECK(tok.token(tok.pad_id()) == "[PAD]");
  CHECK(tok.token(tok.unk_id()) == "[UNK]");
  const auto hello = tok.encode("Hello, world!");
  CHECK(hello == std::vector<std::int32_t>{101, 7592, 1010, 2088, 999, 102});
  CHECK(tok.decode(hello) == "hello, world!");

  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "word ";
  CHECK(tok.encode(long_text).size() == 128);
  tok.set_max_length(256);
  CHECK(tok.encode(long_text).size() == 256);
  CHECK(tok.encode(long_text).back() == tok.sep_id());
  CHECK_THROWS_AS(tok.set_max_length(2), p4lm::InvalidArgument);

  const std::vector<std::string> texts = {"a short one", "", "a somewhat longer sentence than the first"};
  const auto b = tok.encode_batch(texts, 8);
  REQUIRE(b.batch == 3);
  CHECK(b.length == 8);  // the longest, truncated to 8
  CHECK(b.lengths == std::vector<std::int32_t>{5, 2, 8});
  for (std::size_t i = 0; i < b.batch; ++i) {
    const auto row = tok.encode_single(texts[i], 8).ids;
    for (std::size_t t = 0; t < b.length; ++t) {
      const bool valid = t < row.size();
      CHECK(b.attention_mask[i * b.length + t] == (valid ? 1 : 0));
      CHECK(b.ids[i * b.length + t] == (valid ? row[t] : tok.pad_id()));
      CHECK(b.type_ids[i * b.length + t] == 0);
    }
  }
}

TEST_CASE("WordPieceTokenizer: a tokenizer.json of another model type is one clear error", "[wordpiece]") {
  const fs::path dir = fs::temp_directory_path() / "p4lm_wordpiece_test";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir / name) << body;
    return dir / name;
  };
  const auto bpe = write("bpe.json", R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
    "normalizer": null, "pre_tokenizer": {"type": "ByteLevel"}})");
  try {
    (void)WordPieceTokenizer::from_file(bpe);
    FAIL("no error");
  } catch (const p4lm::ParseError& e) {
    const std::string what = e.what();
    CHECK(what.find("bpe.json") != std::string::npos);
    CHECK(what.find("model.type") != std::string::npos);
    CHECK(what.find("\"BPE\"") != std::string::npos);
  }
  const auto other_norm = write("norm.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}},
    "normalizer": {"type": "NFKC"}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_file(other_norm), Catch::Contains("normalizer.type"));
  const auto no_cls =
      write("nocls.json", R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "[SEP]": 1}},
    "normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"}})");
  CHECK_THROWS_WITH(WordPieceTokenizer::from_file(no_cls), Catch::Contains("[CLS]"));
  CHECK_THROWS_WITH(WordPieceTokenizer::from_file(write("bad.json", "{not json")),
                    Catch::Contains("invalid JSON"));
  fs::remove_all(dir);
}

TEST_CASE("WordPieceTokenizer: WordPiece rules on a small vocabulary", "[wordpiece]") {
  // Independent of the model: greedy longest match, ## pieces, [UNK] for a word with an unmatched
  // part or more than max_input_chars_per_word characters, punctuation and CJK split, accents.
  const fs::path dir = fs::temp_directory_path() / "p4lm_wordpiece_small";
  fs::create_directories(dir);
  const auto path = dir / "tokenizer.json";
  std::ofstream(path)
      << R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "max_input_chars_per_word": 10,
    "continuing_subword_prefix": "##", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
    "un": 4, "##aff": 5, "##able": 6, "unaff": 7, "cafe": 8, "!": 9, "中": 10, "##s": 11, "a": 12}},
    "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
    "strip_accents": null, "lowercase": true}, "pre_tokenizer": {"type": "BertPreTokenizer"},
    "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}, {"id": 2, "content": "[CLS]", "special": true},
    {"id": 3, "content": "[SEP]", "special": true}]})";
  const auto tok = WordPieceTokenizer::from_file(path);
  using V = std::vector<std::int32_t>;
  CHECK(tok.tokenize("Unaffable") == V{7, 6});  // longest prefix "unaff", then "##able"
  CHECK(tok.tokenize("unaffs") == V{7, 11});
  CHECK(tok.tokenize("unaffx") == V{1});               // an unmatched part makes the whole word [UNK]
  CHECK(tok.tokenize("aaaa") == V{1});                 // no "##a" -> [UNK]
  CHECK(tok.tokenize("unaffableab") == V{1});          // 11 chars > 10
  CHECK(tok.tokenize("CAFÉ!中a") == V{8, 9, 10, 12});  // accent stripped, punctuation and CJK split
  CHECK(tok.tokenize("a[SEP]a") == V{12, 3, 12});      // added tokens match literally
  CHECK(tok.normalize("A\tB\x01") == "a b");
  CHECK(tok.decode(V{2, 7, 6, 9, 3, 0}) == "unaffable!");
  fs::remove_all(dir);
}
