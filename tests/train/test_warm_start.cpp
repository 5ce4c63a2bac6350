// The warm start's link-curve plot of a run folder: the link-sentence loss with real against
// shuffled user embeddings, written only when the run recorded the shuffled control.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <string>

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
