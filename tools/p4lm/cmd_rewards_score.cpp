// `p4lm rewards score`: every reward, the mix and the gold judge added to each line of a pitch file.
//   p4lm rewards score --data runs/data --models runs/rewards --pitches s.jsonl [--weights 1,1,1,1]
// Each line needs user_id, movie_id and pitch; the premise (movie facts), profile text and the user's
// CF embedding are looked up in the data build. Writes <pitches without .jsonl>.rewards.jsonl.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <p4lm/core/config.hpp>
#include <p4lm/eval/catalog_file.hpp>
#include <p4lm/eval/gold_judge.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/reward/reward_mix.hpp>
#include <p4lm/reward/training.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {
struct RewardsScoreConfig {
  Param<std::string> data{"runs/data", "p4lm data build (catalog.jsonl, profiles.jsonl, config.json's cf)"};
  Param<std::string> models{"runs/rewards", "folder of trained rewards (p4lm rewards train --out)"};
  Param<std::string> pitches{"", "JSONL with user_id, movie_id, pitch per line"};
  Param<std::string> out{"", "output (default: <pitches without .jsonl>.rewards.jsonl)"};
  Param<std::string> encoder{"models/all-minilm-l6-v2", "the frozen encoder the rewards were trained on"};
  Param<std::string> weights{"1,1,1,1",
                             "mix weights η: precision, appeal, personalization, relevance (>= 0)"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::RewardsScoreConfig, data, models, pitches, out, encoder, weights);

namespace p4lm::cli {
namespace fs = std::filesystem;

int rewards_score(std::span<const std::string> args) {
  const auto c = parse_flags<RewardsScoreConfig>(args);
  if (c.pitches->empty()) fail<UsageError>("p4lm rewards score: --pitches FILE.jsonl is required");
  const fs::path data(*c.data), models(*c.models), in(*c.pitches);
  std::vector<double> eta;
  std::stringstream ws(*c.weights);
  for (std::string t; std::getline(ws, t, ',');) eta.push_back(std::stod(t));

  const auto catalog = eval::read_catalog(data / "catalog.jsonl");
  std::map<std::int64_t, std::string> profiles;
  io::for_each_jsonl(data / "profiles.jsonl", [&](const nlohmann::json& j, std::size_t) {
    profiles[j.at("user_id").get<std::int64_t>()] = j.at("text").get<std::string>();
  });
  const auto cfg = nlohmann::json::parse(std::ifstream(data / "config.json"));
  const auto cf = cf::load_embeddings<32>(cfg.value("cf", ""));
  std::map<std::int64_t, std::size_t> user_index;
  for (std::size_t u = 0; u < cf.user_ids.size(); ++u) user_index[cf.user_ids[u]] = u;

  // Rollouts from the file: a missing field, an unknown user or movie, an empty pitch is a ParseError.
  std::vector<reward::RolloutData> rows;
  std::vector<nlohmann::json> lines;
  io::for_each_jsonl(in, [&](const nlohmann::json& j, std::size_t line) {
    const auto field = [&](const char* name) -> const nlohmann::json& {
      const auto it = j.find(name);
      if (it == j.end() || it->is_null()) throw ParseError(in, line, name, "missing");
      return *it;
    };
    reward::RolloutData r;
    try {
      r.user_id = field("user_id").get<std::int64_t>();
      r.movie_id = field("movie_id").get<std::int64_t>();
      r.pitch = field("pitch").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw ParseError(in, line, "user_id/movie_id/pitch", e.what());
    }
    if (r.pitch.find_first_not_of(" \t\r\n") == std::string::npos)
      throw ParseError(in, line, "pitch", "empty pitch");
    try {
      r.premise = data::premise_text(catalog.by_movie_id(r.movie_id));
    } catch (const Error&) {
      throw ParseError(in, line, "movie_id",
                       "movie " + std::to_string(r.movie_id) + " is not in the catalog");
    }
    const auto p = profiles.find(r.user_id);
    const auto u = user_index.find(r.user_id);
    if (p == profiles.end() || u == user_index.end())
      throw ParseError(in, line, "user_id",
                       "user " + std::to_string(r.user_id) + " has no profile or CF embedding");
    r.profile = p->second;
    const auto e = cf.user(cf::Index(u->second));
    r.user_embedding.assign(e.begin(), e.end());
    rows.push_back(std::move(r));
    lines.push_back(j);
  });

  auto f = std::make_shared<reward::TextFeatures>(*c.encoder);
  reward::RewardMix<reward::Precision<>, reward::Appeal<>, reward::Personalization<>,
                    reward::PreferenceRelevance<backend::cpu, 32>>
      mix(reward::Precision<>::load(models / "precision.safetensors", f),
          reward::Appeal<>::load(models / "appeal.safetensors", f),
          reward::Personalization<>::load(models / "personalization.safetensors", f),
          reward::PreferenceRelevance<backend::cpu, 32>::load(models / "preference_relevance.safetensors",
                                                              f));
  mix.set_weights(eta);
  const auto judge = eval::GoldJudge::load(data);
  std::vector<reward::Rollout> views;
  for (const auto& r : rows) views.push_back(r.view());
  std::string text;
  for (std::size_t s = 0; s < views.size(); s += 64) {
    const auto chunk =
        std::span<const reward::Rollout>(views).subspan(s, std::min<std::size_t>(64, views.size() - s));
    const auto m = mix.evaluate(chunk);
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      auto j = lines[s + i];
      for (std::size_t k = 0; k < mix.size; ++k) j["rewards"][std::string(mix.names()[k])] = m.raw[k][i];
      j["rewards"]["mix"] = m.total[i];
      j["gold"] = judge.score(
          {.user_id = rows[s + i].user_id, .movie_id = rows[s + i].movie_id, .pitch = rows[s + i].pitch});
      text += j.dump() + "\n";
    }
  }
  fs::path out(*c.out);
  if (out.empty()) out = fs::path(in).replace_extension().string() + ".rewards.jsonl";
  io::write_file_atomically(out, text);
  std::cout << "scored " << rows.size() << " pitches of " << in.string() << " into " << out.string() << '\n';
  return 0;
}

}  // namespace p4lm::cli
