// `p4lm pitch --user U --movie M`: a pitch from a trained pitch model (p4lm sft) for a real MovieLens
// user and movie (MovieLens ids), with the user's profile and the prompt the model saw
// (pipeline::write_pitch, include/p4lm/pipeline/pitch_stage.hpp).
//   p4lm pitch --user 414 --movie 6 --model runs/main/sft/model.safetensors --data runs/main/data
//   p4lm pitch --pairs pairs.jsonl ...      # one JSON line per pitch, the model loaded once

#include <iostream>

#include <p4lm/pipeline/pitch_stage.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {

int pitch_main(std::span<const std::string> args) {
  const auto c = parse_flags<pipeline::PitchConfig>(args);
  if (!c.pairs->empty()) {
    pipeline::write_pair_pitches(c, [](const pipeline::PitchPair& p, const std::string& pitch) {
      std::cout << nlohmann::json{{"user_id", p.user_id},
                                  {"movie_id", p.movie_id},
                                  {"seed", p.seed},
                                  {"pitch", pitch}}
                       .dump()
                << std::endl;  // flushed: a long run's file holds every pitch written so far
    });
    return 0;
  }
  const auto r = pipeline::write_pitch(c);
  if (!*c.json)
    std::cout << "user " << *c.user << " (" << r.split << " split): " << r.request.profile << '\n'
              << "prompt (" << r.conditioning << " conditioning): " << r.prompt << '\n';
  for (const auto& pitch : r.pitches) {
    if (*c.json)
      std::cout << nlohmann::json{{"user_id", *c.user}, {"movie_id", *c.movie}, {"pitch", pitch}}.dump()
                << '\n';
    else
      std::cout << "pitch: " << pitch << '\n';
  }
  return 0;
}

const Registration pitch_registration{
    "pitch", Command{"write a pitch for a MovieLens user and movie with a trained pitch model",
                     flags_help<pipeline::PitchConfig>(), pitch_main}};

}  // namespace
}  // namespace p4lm::cli
