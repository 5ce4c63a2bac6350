// Kill -9 at random moments of `p4lm rewards train` (reward::train_rewards, the library call the command
// makes), then the same run: the output folder ends byte for byte as an uninterrupted run's (the four
// heads, their checkpoints and metrics, heldout.json). The runs are child processes of this test
// program (tests/support/kill_resume.hpp) on a tiny synthetic data build; needs the MiniLM encoder.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kill_resume.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/reward/training.hpp"
#include "skip.hpp"

namespace reward_kill_test {

namespace fs = std::filesystem;

fs::path kill_minilm_dir() {
  const char* env = std::getenv("P4LM_MODELS");
  const fs::path models =
      env && *env ? fs::path(env) : fs::path(P4LM_TEST_FIXTURES_DIR) / ".." / ".." / "models";
  return models / "all-minilm-l6-v2";
}

constexpr int kill_cf_dim = 16;

// A data build in miniature: nli/, appeal/, personalization/ and relevance/ train and test files over
// 4 users x 6 movies, and the CF model of the relevance targets.
void write_tiny_reward_data(const fs::path& dir) {
  namespace data = p4lm::data;
  const char* titles[] = {"Heat", "Alien", "Up", "Fargo", "Jaws", "Rocky"};
  const char* genres[] = {"crime", "science fiction", "animated", "crime", "thriller", "sports"};
  p4lm::Rng rng(3);
  p4lm::cf::Embeddings<kill_cf_dim> cf(4, 6);
  for (auto& v : cf.users) v = static_cast<float>(rng.normal());
  for (auto& v : cf.items) v = static_cast<float>(rng.normal());
  cf.user_ids = {1, 2, 3, 4};
  cf.item_ids = {10, 11, 12, 13, 14, 15};
  fs::create_directories(dir);
  p4lm::cf::save_embeddings(cf, dir / "cf.safetensors");
  for (const std::string split : {"train", "test"}) {
    std::vector<data::NliPair> nli;
    std::vector<data::PreferencePair> appeal, personal;
    std::vector<data::RelevanceExample> relevance;
    const int users = split == "train" ? 3 : 1;
    for (int u = 0; u < users; ++u)
      for (int m = 0; m < 6; ++m) {
        const std::int64_t user = split == "train" ? u + 1 : 4, movie = 10 + m;
        const std::string title = titles[m], genre = genres[m];
        const std::string premise = title + " is a " + genre + " film from " + std::to_string(1980 + m) + ".";
        nli.push_back(
            {user, movie, premise, title + " is a " + genre + " film.", "entailment", "identity", {}});
        nli.push_back({user,
                       movie,
                       premise,
                       title + " is a musical about " + titles[(m + 1) % 6] + ".",
                       "contradiction",
                       "plot",
                       {}});
        const std::string good = "Watch " + title + ", a gripping " + genre + " film you will love.",
                          bland = title + " is a film.";
        appeal.push_back(
            {user, movie, "", m % 2 ? good : bland, m % 2 ? bland : good, m % 2 ? "a" : "b", "bland"});
        const std::string profile = "likes " + std::string(genres[(m + u) % 6]) + " films";
        personal.push_back(
            {user, movie, profile,
             "Because you like " + std::string(genres[(m + u) % 6]) + ", " + title + " is for you.", good,
             "a", "generic"});
        data::RelevanceExample r{user, movie, good, {}};
        const auto item = cf.item(m);
        r.target.assign(item.begin(), item.end());
        relevance.push_back(r);
      }
    data::write_records(dir / "nli" / (split + ".jsonl"), nli);
    data::write_records(dir / "appeal" / (split + ".jsonl"), appeal);
    data::write_records(dir / "personalization" / (split + ".jsonl"), personal);
    data::write_records(dir / "relevance" / (split + ".jsonl"), relevance);
  }
}

// The child's work: what `p4lm rewards train --data <input> --out <out> --cf <input>/cf.safetensors`
// runs, on tiny settings.
void rewards_train_child(const fs::path& data, const fs::path& out) {
  auto f = std::make_shared<p4lm::reward::TextFeatures>(kill_minilm_dir());
  p4lm::reward::train_rewards(
      f,
      {.data = data,
       .out = out,
       .cf = data / "cf.safetensors",
       .options = {
           .max_train = 12, .max_test = 4, .steps = 150, .batch = 8, .hidden = 16, .checkpoint_every = 7}});
}

}  // namespace reward_kill_test

TEST_CASE("kill-resume child", "[.]") {  // hidden: run only by kill_and_resume as a child process
  const char* kind = p4lm_test::kill_resume::child_kind();
  const char* out = p4lm_test::kill_resume::child_out();
  const char* input = p4lm_test::kill_resume::child_input();
  if (!kind || !out || !input) return;
  if (std::string(kind) == "rewards") reward_kill_test::rewards_train_child(input, out);
}

TEST_CASE("rewards train: kill -9 at random moments, then the same run: the files of the uninterrupted run",
          "[reward][kill]") {
  namespace fs = std::filesystem;
  if (!fs::exists(reward_kill_test::kill_minilm_dir() / "model.safetensors"))
    P4LM_SKIP("all-minilm-l6-v2 not fetched: run scripts/fetch-models.sh or set P4LM_MODELS");
  const fs::path data =
      fs::temp_directory_path() / ("p4lm_test_kill_rewards_data_" + std::to_string(::getpid()));
  fs::remove_all(data);
  reward_kill_test::write_tiny_reward_data(data);
  p4lm_test::kill_resume::kill_and_resume(
      {.kind = "rewards",
       .progress_files = {"precision_metrics.jsonl", "appeal_metrics.jsonl", "personalization_metrics.jsonl",
                          "preference_relevance_metrics.jsonl"},
       .input = data.string()});
  fs::remove_all(data);
}
