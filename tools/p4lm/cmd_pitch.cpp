// `p4lm pitch --user U --movie M`: a pitch from a trained pitch model (p4lm sft) for a real MovieLens
// user and movie (MovieLens ids), with the user's profile and the prompt the model saw.
//   p4lm pitch --user 414 --movie 6 --model runs/main/sft/model.safetensors --data runs/main/data

#include <iostream>

#include <p4lm/p4lm.hpp>
#include <p4lm/train/pitch_writer.hpp>

#include "p4lm/command.hpp"

namespace p4lm::cli {
namespace {
struct PitchConfig {
  Param<long> user{0, "MovieLens userId (required)"};
  Param<long> movie{0, "MovieLens movieId (required)"};
  Param<std::string> model{"runs/main/sft/model.safetensors", "pitch model written by p4lm sft"};
  Param<std::string> data{"runs/main/data", "folder of p4lm data build (catalog.jsonl, profiles.jsonl)"};
  Param<std::string> cf{"", "CF embeddings (default: the file the model was trained with)"};
  Param<long> embedding_user{0, "use this user's CF embedding instead (control: a different user)"};
  Param<long> samples{1, "pitches to sample"};
  Param<double> temperature{0.7, "sampling temperature (0: greedy)"};
  Param<long> top_k{40, "sample among the k most likely tokens (0: all)"};
  Param<long> max_new_tokens{200, "longest pitch in tokens"};
  Param<long> seed{1, "sampling seed"};
  Param<bool> json{false, "print JSON (one object per sample)"};
};
}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::PitchConfig, user, movie, model, data, cf, embedding_user, samples,
                        temperature, top_k, max_new_tokens, seed, json);

namespace p4lm::cli {
namespace {

int pitch_main(std::span<const std::string> args) {
  const auto c = parse_flags<PitchConfig>(args);
  if (*c.user <= 0 || *c.movie <= 0) fail<UsageError>("--user and --movie (MovieLens ids) are required");
  if (*c.samples < 1 || *c.top_k < 0 || *c.max_new_tokens < 1)
    fail<UsageError>("--samples, --max-new-tokens >= 1, --top-k >= 0");
  const train::PitchSources sources(*c.data);
  auto request = sources.request(*c.user, *c.movie);
  if (*c.embedding_user > 0) request.embedding_user_id = *c.embedding_user;
  const auto writer = train::PitchWriter::load(*c.model, *c.cf);
  auto s = train::pitch_sampling();
  s.max_new_tokens = static_cast<std::size_t>(*c.max_new_tokens);
  s.temperature = *c.temperature;
  s.top_k = static_cast<std::size_t>(*c.top_k);
  Rng rng(static_cast<std::uint64_t>(*c.seed), 0x717c4ULL);
  if (!*c.json) {
    std::cout << "user " << *c.user << " (" << sources.split_of(*c.user) << " split): " << request.profile
              << '\n'
              << "prompt (" << train::to_string(writer.conditioning())
              << " conditioning): " << writer.prompt_text(request) << '\n';
  }
  for (long k = 0; k < *c.samples; ++k) {
    const auto pitch = writer.write(request, rng, s);
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
                     flags_help<PitchConfig>(), pitch_main}};

}  // namespace
}  // namespace p4lm::cli
