// The warm start: the link-curve plot of a run folder (the link-sentence loss with real against
// shuffled user embeddings, written only when the run recorded the shuffled control), and the SFT
// corpus loader's refusal of records whose user or movie has no CF row.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

#include "p4lm/data/datasets.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/train/warm_start.hpp"

TEST_CASE("warm start: link curves plot real against shuffled users, only for CF runs", "[train][sft]") {
  const auto root = std::filesystem::temp_directory_path() / "p4lm_test_link_curves";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "cf");
  std::filesystem::create_directories(root / "text");
  // A CF run: four evaluations; the stage-1 one and one without link tokens (null) are left out.
  p4lm::io::write_file_atomically(
      root / "cf" / "eval_metrics.jsonl",
      "{\"step\":50,\"stage\":1,\"eval_loss\":4.1,\"eval_link_loss\":4.2,"
      "\"eval_loss_shuffled_users\":4.1,\"eval_link_loss_shuffled_users\":4.2}\n"
      "{\"step\":75,\"stage\":2,\"eval_loss\":1.5,\"eval_link_loss\":null,"
      "\"eval_loss_shuffled_users\":1.5,\"eval_link_loss_shuffled_users\":null}\n"
      "{\"step\":100,\"stage\":2,\"eval_loss\":1.2,\"eval_link_loss\":0.40,"
      "\"eval_loss_shuffled_users\":1.2,\"eval_link_loss_shuffled_users\":0.41}\n"
      "{\"step\":150,\"stage\":2,\"eval_loss\":1.1,\"eval_link_loss\":0.30,"
      "\"eval_loss_shuffled_users\":1.15,\"eval_link_loss_shuffled_users\":0.45}\n");
  p4lm::train::write_link_curves(root / "cf", root / "cf" / "link_curves.svg", "seed 1");
  REQUIRE(std::filesystem::exists(root / "cf" / "link_curves.svg"));
  const std::string svg = p4lm::io::read_file(root / "cf" / "link_curves.svg");
  CHECK(svg.find("held-out link loss, real users") != std::string::npos);
  CHECK(svg.find("held-out link loss, shuffled users") != std::string::npos);
  // Two lines of two points each (steps 100 and 150).
  const std::regex line("<polyline[^>]* points=\"([^\"]*)\"");
  std::size_t lines = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), line); it != std::sregex_iterator();
       ++it, ++lines) {
    const std::string points = (*it)[1];
    CHECK(std::count(points.begin(), points.end(), ' ') == 1);
  }
  CHECK(lines == 2);

  // A text run records no shuffled control: no link plot.
  p4lm::io::write_file_atomically(root / "text" / "eval_metrics.jsonl",
                                  "{\"step\":50,\"stage\":2,\"eval_loss\":1.3,\"eval_link_loss\":0.3}\n");
  p4lm::train::write_link_curves(root / "text", root / "text" / "link_curves.svg", "text");
  CHECK_FALSE(std::filesystem::exists(root / "text" / "link_curves.svg"));
  // Nor for a folder without metrics.
  p4lm::train::write_link_curves(root / "none", root / "none.svg", "none");
  CHECK_FALSE(std::filesystem::exists(root / "none.svg"));
  std::filesystem::remove_all(root);
}

namespace {

// Bytes as token ids (2..257; 0 and 1 are BOS and EOS): enough to encode a corpus without model files.
p4lm::train::TextCodec warm_start_byte_codec() {
  p4lm::train::TextCodec c;
  c.encode = [](std::string_view s) {
    std::vector<std::int32_t> ids;
    for (unsigned char ch : s) ids.push_back(std::int32_t(ch) + 2);
    return ids;
  };
  c.decode = [](std::span<const std::int32_t> ids) {
    std::string s;
    for (auto id : ids)
      if (id >= 2) s.push_back(char(id - 2));
    return s;
  };
  c.bos = 0, c.eos = 1, c.vocab_size = 258, c.name = "bytes";
  return c;
}

p4lm::data::SftExample warm_start_example(std::int64_t user, std::int64_t movie, bool defective = false) {
  p4lm::data::SftExample e;
  e.user_id = user, e.movie_id = movie, e.title = "Heat", e.year = 1995, e.genres = {"Crime"};
  e.overview = "A heist.", e.profile = "likes crime", e.pitch = "A heist you will like.";
  if (defective) e.defects = {"generic"};
  return e;
}

}  // namespace

TEST_CASE("warm start: an SFT record whose user or movie has no CF row is an error naming both files",
          "[train][sft][sft_data]") {
  namespace fs = std::filesystem;
  const auto root = fs::temp_directory_path() / ("p4lm_test_cf_rows_" + std::to_string(::getpid()));
  fs::remove_all(root);
  p4lm::cf::Embeddings<4> e(2, 2);
  e.user_ids = {1, 2}, e.item_ids = {10, 11};
  const fs::path cf_file = root / "cf" / "cf.safetensors";
  const p4lm::train::CfRows rows(e, cf_file);
  const auto codec = warm_start_byte_codec();
  const p4lm::train::PromptOptions prompt{};
  const auto load = [&](const std::string& split) {
    return p4lm::train::load_sft_split(root / "data", split, codec, p4lm::train::Conditioning::cf, prompt,
                                       &rows, true);
  };
  // Every user and movie known: each record is kept with its CF rows.
  p4lm::data::write_records(root / "data" / "sft" / "train.jsonl",
                            std::vector{warm_start_example(1, 10), warm_start_example(2, 11),
                                        warm_start_example(7, 10, true)});  // defective: not used at all
  const auto ok = load("train");
  REQUIRE(ok.size() == 2);
  CHECK((ok[0].user == 0 && ok[0].item == 0 && ok[1].user == 1 && ok[1].item == 1));
  // User 3 (line 3) has no CF row: the records of that user used to vanish without a word.
  p4lm::data::write_records(root / "data" / "sft" / "val.jsonl",
                            std::vector{warm_start_example(1, 10), warm_start_example(2, 10),
                                        warm_start_example(3, 11), warm_start_example(1, 11)});
  const std::string val = (root / "data" / "sft" / "val.jsonl").string();
  CHECK_THROWS_AS(load("val"), p4lm::ParseError);
  CHECK_THROWS_WITH(load("val"), Catch::Contains(val + ":3: field 'user_id': user 3 has no row in " +
                                                 cf_file.string() + " (2 users)"));
  CHECK_THROWS_WITH(load("val"), Catch::Contains("build the data with --cf " + cf_file.string()));
  // The same for a movie.
  p4lm::data::write_records(root / "data" / "sft" / "test.jsonl", std::vector{warm_start_example(2, 12)});
  CHECK_THROWS_WITH(load("test"), Catch::Contains("test.jsonl:1: field 'movie_id': movie 12 has no row in " +
                                                  cf_file.string() + " (2 movies)"));
  // Text conditioning needs no CF rows.
  CHECK(p4lm::train::load_sft_split(root / "data", "val", codec, p4lm::train::Conditioning::text, prompt,
                                    nullptr, true)
            .size() == 4);
  fs::remove_all(root);
}
