#pragma once
// Pitch files for the gold judge: JSONL with at least `user_id`, `movie_id` (MovieLens ids) and
// `pitch` per line (sft/*.jsonl, a policy's samples, or any LLM's output). score_pitch_file writes
// every line back with a `gold` field added (GoldScores as JSON) and the other fields untouched.
//
//   auto pitches = p4lm::eval::read_pitches("samples.jsonl", &judge);   // checked against the judge
//   p4lm::eval::score_pitch_file(judge, "samples.jsonl", "samples.gold.jsonl");
//
// A line without one of the fields, with a field of the wrong type, an empty pitch, or a movie or
// user the judge does not know is a ParseError naming the file, the line and the field: a pitch is
// never scored as a silent zero. Nothing is written unless every line is good (atomic write).

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/io/jsonl.hpp"

namespace p4lm::eval {

struct PitchLine {
  PitchToJudge pitch;
  nlohmann::json record;  // the whole line, as read
  std::size_t line = 0;
};

// Reads a pitch file; with a judge, also refuses movies, users and empty pitches it cannot judge.
inline std::vector<PitchLine> read_pitches(const std::filesystem::path& path,
                                           const GoldJudge* judge = nullptr) {
  std::vector<PitchLine> out;
  io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
    if (!j.is_object()) throw ParseError(path, line, "", "expected a JSON object");
    PitchLine p{{}, j, line};
    auto need = [&](const char* name, auto& into) {
      if (!j.contains(name)) throw ParseError(path, line, name, "missing");
      try {
        j.at(name).get_to(into);
      } catch (const nlohmann::json::exception&) {
        throw ParseError(path, line, name, "wrong type: " + j.at(name).dump());
      }
    };
    // Ids are integers: a fractional one would be truncated into another user's or movie's id.
    for (const char* id : {"user_id", "movie_id"})
      if (j.contains(id) && !j.at(id).is_number_integer())
        throw ParseError(path, line, id, "expected an integer id, got " + j.at(id).dump());
    need("user_id", p.pitch.user_id);
    need("movie_id", p.pitch.movie_id);
    need("pitch", p.pitch.pitch);
    if (judge) {
      if (const auto bad = judge->problem(p.pitch)) throw ParseError(path, line, bad->first, bad->second);
    } else if (p.pitch.pitch.find_first_not_of(" \t\r\n") == std::string::npos) {
      throw ParseError(path, line, "pitch", "empty pitch");
    }
    out.push_back(std::move(p));
  });
  return out;
}

// Scores every pitch of `in` and writes the lines with a `gold` field to `out`; returns the scores.
inline std::vector<GoldScores> score_pitch_file(const GoldJudge& judge, const std::filesystem::path& in,
                                                const std::filesystem::path& out) {
  const auto lines = read_pitches(in, &judge);
  std::vector<GoldScores> scores;
  scores.reserve(lines.size());
  for (const auto& l : lines) scores.push_back(judge.score(l.pitch));
  io::write_jsonl_with(out, [&](auto&& emit) {
    for (std::size_t k = 0; k < lines.size(); ++k) {
      auto record = lines[k].record;
      record["gold"] = scores[k];
      emit(record);
    }
  });
  return scores;
}

}  // namespace p4lm::eval
