#pragma once
// The pitch-writing stage: pitches from a trained pitch model (the SFT stage's model.safetensors) for
// MovieLens users and movies, with the profile and the prompt the model saw.
//
//   p4lm::pipeline::PitchConfig c;
//   *c.user = 414; *c.movie = 6; *c.model = "runs/main/sft/model.safetensors"; *c.data = "runs/main/data";
//   auto p = p4lm::pipeline::write_pitch(c);   // p.pitches: c.samples pitches
//
//   // Many pairs with one model load: *c.pairs = "pairs.jsonl" (user_id, movie_id[, seed] per line);
//   // each pair's pitches are the ones `p4lm pitch --user --movie --seed` would write alone.
//   p4lm::pipeline::write_pair_pitches(c, [](const PitchPair& p, const std::string& pitch) { ... });
//
//   // `p4lm run`'s sample: one pitch for each of the first n test users of the data stage's held-out
//   // pairs, written to pitches.jsonl
//   auto rows = p4lm::pipeline::write_test_pitches({.model = ..., .cf = ..., .data = ..., .users = 5});

#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/train/pitch_writer.hpp"

namespace p4lm::pipeline {

struct PitchConfig {
  Param<long> user{0, "MovieLens userId (required)"};
  Param<long> movie{0, "MovieLens movieId (required)"};
  Param<std::string> model{"runs/main/sft/model.safetensors", "pitch model written by p4lm sft"};
  Param<std::string> data{"runs/main/data", "folder of p4lm data build (catalog.jsonl, profiles.jsonl)"};
  Param<std::string> cf{"", "CF embeddings (default: the file the model was trained with)"};
  Param<long> embedding_user{0, "use this user's CF embedding instead (control: a different user)"};
  Param<long> samples{1, "pitches to sample", between(1, 1000000)};
  Param<double> temperature{0.7, "sampling temperature (0: greedy)", between(0, 100)};
  Param<long> top_k{40, "sample among the k most likely tokens (0: all)", at_least(0)};
  Param<long> max_new_tokens{200, "longest pitch in tokens", between(1, 1000000)};
  Param<long> no_repeat_ngram_size{0, "never repeat a token n-gram of the pitch (0: off)",
                                   between(0, 1000000)};
  Param<long> seed{1, "sampling seed"};
  Param<bool> json{false, "print JSON (one object per sample)"};
  Param<std::string> pairs{
      "",
      "JSONL of user_id, movie_id (and an optional seed) per line, instead of --user and "
      "--movie: one model load, JSON out"};
};

}  // namespace p4lm::pipeline

BOOST_HANA_ADAPT_STRUCT(p4lm::pipeline::PitchConfig, user, movie, model, data, cf, embedding_user, samples,
                        temperature, top_k, max_new_tokens, no_repeat_ngram_size, seed, json, pairs);

namespace p4lm::pipeline {

// The stream every pitch sample of the pipeline draws from (seeded by the run's seed).
inline constexpr std::uint64_t pitch_rng_stream = 0x717c4ULL;

// Loads a pitch model; a CF-conditioned model whose embeddings are not of a compiled width fails with
// the same message as every other stage.
inline train::PitchWriter load_pitch_writer(const std::filesystem::path& model,
                                            const std::filesystem::path& cf = {}) {
  if (!cf.empty()) cf::check_cf_dim(cf::embeddings_dim(cf));
  return train::PitchWriter::load(model, cf);
}

// The sampling flags of c (--max-new-tokens, --temperature, --top-k, --no-repeat-ngram-size) over
// pitch_sampling()'s defaults.
inline SamplingOptions pitch_sampling_of(const PitchConfig& c) {
  auto s = train::pitch_sampling();
  s.max_new_tokens = static_cast<std::size_t>(*c.max_new_tokens);
  s.temperature = *c.temperature;
  s.top_k = static_cast<std::size_t>(*c.top_k);
  s.no_repeat_ngram_size = static_cast<std::size_t>(*c.no_repeat_ngram_size);
  return s;
}

struct PitchResult {
  train::PitchRequest request;
  std::string split;   // the user's split in the data stage (train, val, test)
  std::string prompt;  // what the model saw after its soft tokens
  std::string conditioning;
  std::vector<std::string> pitches;
};

// `p4lm pitch`: c.samples pitches for (c.user, c.movie).
inline PitchResult write_pitch(const PitchConfig& c) {
  if (*c.user <= 0 || *c.movie <= 0) fail<UsageError>("--user and --movie (MovieLens ids) are required");
  const train::PitchSources sources(*c.data);
  PitchResult r;
  r.request = sources.request(*c.user, *c.movie);
  if (*c.embedding_user > 0) r.request.embedding_user_id = *c.embedding_user;
  const auto writer = load_pitch_writer(*c.model, *c.cf);
  const auto s = pitch_sampling_of(c);
  r.split = sources.split_of(*c.user);
  r.prompt = writer.prompt_text(r.request);
  r.conditioning = train::to_string(writer.conditioning());
  Rng rng(static_cast<std::uint64_t>(*c.seed), pitch_rng_stream);
  for (long k = 0; k < *c.samples; ++k) r.pitches.push_back(writer.write(r.request, rng, s));
  return r;
}

// A line of a pairs file: the pitch request's MovieLens ids and the seed its pitches draw from.
struct PitchPair {
  std::int64_t user_id = 0, movie_id = 0;
  std::uint64_t seed = 0;
  std::size_t line = 0;
};

// user_id, movie_id (integers) and an optional non-negative integer seed (default: default_seed) per
// line; anything else is a ParseError naming the file, the line and the field.
inline std::vector<PitchPair> read_pitch_pairs(const std::filesystem::path& path,
                                               std::uint64_t default_seed) {
  std::vector<PitchPair> pairs;
  io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
    if (!j.is_object()) throw ParseError(path, line, "", "expected a JSON object");
    PitchPair p{0, 0, default_seed, line};
    for (const char* id : {"user_id", "movie_id"}) {
      if (!j.contains(id)) throw ParseError(path, line, id, "missing");
      if (!j.at(id).is_number_integer() || j.at(id).get<std::int64_t>() <= 0)
        throw ParseError(path, line, id, "expected a positive integer id, got " + j.at(id).dump());
    }
    p.user_id = j.at("user_id").get<std::int64_t>(), p.movie_id = j.at("movie_id").get<std::int64_t>();
    if (j.contains("seed")) {
      if (!j.at("seed").is_number_integer() || j.at("seed").get<std::int64_t>() < 0)
        throw ParseError(path, line, "seed", "expected a non-negative integer, got " + j.at("seed").dump());
      p.seed = j.at("seed").get<std::uint64_t>();
    }
    pairs.push_back(p);
  });
  if (pairs.empty()) fail<InvalidArgument>(path.string(), ": no pair");
  return pairs;
}

// `p4lm pitch --pairs FILE`: c.samples pitches for every pair of the file, the model loaded once. The
// file is read, and every user and movie checked against the data build, before the model loads.
// on_pitch sees each pitch in order; progress goes to stderr.
inline void write_pair_pitches(const PitchConfig& c,
                               const std::function<void(const PitchPair&, const std::string&)>& on_pitch) {
  if (*c.user > 0 || *c.movie > 0)
    fail<UsageError>("--pairs replaces --user and --movie: give one or the other");
  const std::filesystem::path file = *c.pairs;
  const auto pairs = read_pitch_pairs(file, static_cast<std::uint64_t>(*c.seed));
  const train::PitchSources sources(*c.data);
  std::vector<train::PitchRequest> requests;
  for (const auto& p : pairs) {
    try {
      requests.push_back(sources.request(p.user_id, p.movie_id));
    } catch (const InvalidArgument& e) {  // "user U is not in .../profiles.jsonl" (or the movie)
      throw ParseError(file, p.line, "", e.what());
    }
    if (*c.embedding_user > 0) requests.back().embedding_user_id = *c.embedding_user;
  }
  const auto writer = load_pitch_writer(*c.model, *c.cf);
  const auto s = pitch_sampling_of(c);
  Progress progress("pitches", pairs.size() * static_cast<std::uint64_t>(*c.samples), "pitch");
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    Rng rng(pairs[i].seed, pitch_rng_stream);  // as write_pitch: a pair's pitches do not depend on the others
    for (long k = 0; k < *c.samples; ++k) {
      on_pitch(pairs[i], writer.write(requests[i], rng, s));
      progress.advance();
    }
  }
  progress.finish();
}

struct TestPitchOptions {
  std::filesystem::path model;  // the SFT stage's model.safetensors
  std::filesystem::path cf;     // its CF embeddings (empty: the file recorded in the model)
  std::filesystem::path data;   // the data stage's folder (catalog, profiles, heldout/test.jsonl)
  std::filesystem::path out;    // pitches.jsonl to write (empty: none)
  std::size_t users = 5;        // distinct test users, in the order of heldout/test.jsonl
  std::uint64_t seed = 1;
  std::size_t max_new_tokens = 0;  // 0: pitch_sampling()'s default
};

// One pitch for the first movie of each of the first o.users test users; the rows (user_id,
// movie_id, profile, prompt, pitch) are returned and written to o.out as JSONL. on_pitch sees each.
inline std::vector<nlohmann::json> write_test_pitches(
    const TestPitchOptions& o,
    const std::function<void(const train::PitchRequest&, const std::string&)>& on_pitch = {}) {
  const train::PitchSources sources(o.data);
  const auto writer = load_pitch_writer(o.model, o.cf);
  const auto heldout = data::read_records<data::HeldoutPair>(o.data / "heldout" / "test.jsonl");
  auto s = train::pitch_sampling();
  if (o.max_new_tokens > 0) s.max_new_tokens = o.max_new_tokens;
  std::set<std::int64_t> users;
  Rng rng(o.seed, pitch_rng_stream);
  std::vector<nlohmann::json> rows;
  for (const auto& h : heldout) {
    if (users.size() >= o.users) break;
    if (!users.insert(h.user_id).second) continue;
    const auto request = sources.request(h.user_id, h.movie_id);
    const auto pitch = writer.write(request, rng, s);
    if (on_pitch) on_pitch(request, pitch);
    rows.push_back({{"user_id", h.user_id},
                    {"movie_id", h.movie_id},
                    {"profile", request.profile},
                    {"prompt", writer.prompt_text(request)},
                    {"pitch", pitch}});
  }
  if (!o.out.empty())
    io::write_jsonl_with(o.out, [&](auto&& emit) {
      for (const auto& row : rows) emit(row);
    });
  return rows;
}

}  // namespace p4lm::pipeline
