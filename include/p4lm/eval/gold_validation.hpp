#pragma once
// How well the gold judge sees the teacher's labelled defects: pair accuracy on one user split of a
// `p4lm data build` folder (the test users by default, whose files no model trains on).
//
//   auto v = p4lm::eval::validate_gold_judge(judge, "runs/data");   // "test"
//   std::cout << v.table();
//
// Pairs are minimal: the same plan rendered clean and with one defect (teacher.hpp), so they differ
// only in what the defect changes.
//   precision, hallucinated vs clean (pitches):   each sft/<split>.jsonl pitch labelled hallucinated
//       against the clean rendering of its plan (relevance/<split>.jsonl holds it for every pitch);
//   precision, hallucinated vs clean (sentences): nli/<split>.jsonl contradiction sentences against
//       the entailment sentence that follows when it is the same slot (its clean counterpart);
//   personalization, off_preference / generic vs clean: personalization/<split>.jsonl pairs.
// A pair counts as right when the clean pitch scores strictly higher on the dimension, half when the
// scores tie: accuracy = (right + ties / 2) / pairs. The judge is validated here, never tuned here.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/data/datasets.hpp"
#include "p4lm/eval/gold_judge.hpp"

namespace p4lm::eval {

struct PairTally {
  std::string dimension;  // precision or personalization
  std::string pairs;      // "hallucinated vs clean (pitches)"
  std::size_t n = 0, clean_above = 0, ties = 0, defective_above = 0;
  double accuracy() const {
    return n ? (static_cast<double>(clean_above) + 0.5 * static_cast<double>(ties)) / static_cast<double>(n)
             : std::nan("");
  }
  void add(double clean, double defective) {
    ++n;
    if (clean > defective) ++clean_above;
    if (clean == defective) ++ties;
    if (clean < defective) ++defective_above;
  }
};

struct GoldValidation {
  std::string split;
  std::vector<PairTally> rows;
  // Calibration on the split's clean SFT pitches: false alarms and the dimensions' levels.
  std::size_t clean = 0, clean_with_contradiction = 0, clean_with_unknown_word = 0;
  double clean_precision = 0, clean_personalization = 0, clean_fluency = 0;
  // Hallucinated SFT pitches with at least one contradicted claim.
  std::size_t hallucinated = 0, hallucinated_caught = 0;

  nlohmann::json json() const {
    nlohmann::json j{{"split", split}};
    for (const auto& r : rows)
      j["pairs"].push_back({{"dimension", r.dimension},
                            {"pairs", r.pairs},
                            {"n", r.n},
                            {"clean_above", r.clean_above},
                            {"ties", r.ties},
                            {"defective_above", r.defective_above},
                            {"accuracy", r.accuracy()}});
    j["clean"] = {{"pitches", clean},
                  {"with_contradiction", clean_with_contradiction},
                  {"with_unknown_word", clean_with_unknown_word},
                  {"mean_precision", clean_precision},
                  {"mean_personalization", clean_personalization},
                  {"mean_fluency", clean_fluency}};
    j["hallucinated"] = {{"pitches", hallucinated}, {"caught", hallucinated_caught}};
    return j;
  }

  // Markdown: the pair table, then the calibration lines.
  std::string table() const {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3);
    os << "| dimension | pairs (" << split
       << " users) | n | clean higher | ties | defective higher | accuracy |\n"
       << "| --- | --- | --- | --- | --- | --- | --- |\n";
    for (const auto& r : rows)
      os << "| " << r.dimension << " | " << r.pairs << " | " << r.n << " | " << r.clean_above << " | "
         << r.ties << " | " << r.defective_above << " | " << r.accuracy() << " |\n";
    os << "\nclean pitches: " << clean << ", with a contradicted claim: " << clean_with_contradiction
       << ", with a word in no dictionary: " << clean_with_unknown_word << "; mean precision "
       << clean_precision << ", personalization " << clean_personalization << ", fluency " << clean_fluency
       << "\n"
       << "hallucinated pitches: " << hallucinated << ", with a contradicted claim: " << hallucinated_caught
       << "\n";
    return os.str();
  }
};

inline GoldValidation validate_gold_judge(const GoldJudge& judge, const std::filesystem::path& data_dir,
                                          std::string_view split = "test") {
  const std::string name = std::string(split) + ".jsonl";
  GoldValidation v;
  v.split = std::string(split);
  const auto sft = data::read_records<data::SftExample>(data_dir / "sft" / name);
  const auto relevance = data::read_records<data::RelevanceExample>(data_dir / "relevance" / name);
  const auto nli = data::read_records<data::NliPair>(data_dir / "nli" / name);
  const auto pairs = data::read_records<data::PreferencePair>(data_dir / "personalization" / name);

  std::map<std::pair<std::int64_t, std::int64_t>, const std::string*> clean_text;
  for (const auto& r : relevance) clean_text[{r.user_id, r.movie_id}] = &r.pitch;
  auto score = [&](std::int64_t user, std::int64_t movie, const std::string& text) {
    return judge.score(PitchToJudge{user, movie, text});
  };

  PairTally pitches{"precision", "hallucinated vs clean (pitches)"};
  double sum_p = 0, sum_q = 0, sum_f = 0;
  for (const auto& e : sft) {
    if (e.defects.empty()) {
      const auto s = score(e.user_id, e.movie_id, e.pitch);
      ++v.clean;
      v.clean_with_contradiction += s.precision.contradicted > 0;
      v.clean_with_unknown_word += s.fluency.unknown_words > 0;
      sum_p += s.precision.score;
      sum_q += s.personalization.score;
      sum_f += s.fluency.score;
      continue;
    }
    if (e.defects != std::vector<std::string>{"hallucinated"}) continue;
    const auto bad = score(e.user_id, e.movie_id, e.pitch);
    ++v.hallucinated;
    v.hallucinated_caught += bad.precision.contradicted > 0;
    const auto it = clean_text.find({e.user_id, e.movie_id});
    if (it == clean_text.end()) continue;
    pitches.add(score(e.user_id, e.movie_id, *it->second).precision.score, bad.precision.score);
  }
  if (v.clean) {
    v.clean_precision = sum_p / static_cast<double>(v.clean);
    v.clean_personalization = sum_q / static_cast<double>(v.clean);
    v.clean_fluency = sum_f / static_cast<double>(v.clean);
  }

  PairTally sentences{"precision", "hallucinated vs clean (sentences)"};
  for (std::size_t k = 0; k + 1 < nli.size(); ++k) {
    const auto& bad = nli[k];
    const auto& good = nli[k + 1];
    if (bad.label != "contradiction" || good.label != "entailment" || bad.slot != good.slot ||
        bad.user_id != good.user_id || bad.movie_id != good.movie_id)
      continue;
    sentences.add(score(good.user_id, good.movie_id, good.hypothesis).precision.score,
                  score(bad.user_id, bad.movie_id, bad.hypothesis).precision.score);
  }

  PairTally off{"personalization", "off_preference vs clean"}, generic{"personalization", "generic vs clean"};
  PairTally backed{"personalization",
                   "off_preference vs clean, every genre/tag claim backed by >= 3 held-out ratings"};
  auto well_backed = [](const PersonalizationScore& q) {
    return !q.claims.empty() && std::all_of(q.claims.begin(), q.claims.end(), [](const PreferenceClaim& c) {
      return c.kind == ClaimKind::title || c.heldout_movies >= 3;
    });
  };
  for (const auto& p : pairs) {
    const bool a_wins = p.winner == "a";
    const auto win = score(p.user_id, p.movie_id, a_wins ? p.a : p.b).personalization;
    const auto lose = score(p.user_id, p.movie_id, a_wins ? p.b : p.a).personalization;
    if (p.loser_defect == "off_preference") {
      off.add(win.score, lose.score);
      if (well_backed(win) && well_backed(lose)) backed.add(win.score, lose.score);
    }
    if (p.loser_defect == "generic") generic.add(win.score, lose.score);
  }
  v.rows = {pitches, sentences, off, backed, generic};
  return v;
}

}  // namespace p4lm::eval
