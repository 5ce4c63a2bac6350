#pragma once
// The sampling settings PPOConfig and PGConfig share: the response budget, the EOS token, the
// missing-EOS penalty, the length floor, the repetition penalty and the seed. Both configs check them and
// write them into checkpoint fingerprints through these two functions, so the rules cannot drift apart.

#include <nlohmann/json.hpp>

namespace p4lm::rl {

// Checks c's sampling fields with need(ok, field, value, rule), the config's own error reporter.
template <class Config, class Need>
void validate_sampling(const Config& c, Need&& need) {
  need(c.response_length > 0, "response_length", c.response_length, "must be > 0");
  need(c.missing_eos_penalty >= 0, "missing_eos_penalty", c.missing_eos_penalty, "must be >= 0");
  need(c.missing_eos_penalty == 0 || c.eos_token_id >= 0, "missing_eos_penalty", c.missing_eos_penalty,
       "needs eos_token_id");
  need(c.short_response_penalty >= 0, "short_response_penalty", c.short_response_penalty, "must be >= 0");
  need(c.short_response_penalty == 0 || c.eos_token_id >= 0, "short_response_penalty",
       c.short_response_penalty, "needs eos_token_id");
  need(c.min_response_length < c.response_length, "min_response_length", c.min_response_length,
       "must be < response_length");
  need(c.repeated_ngram_size >= 1, "repeated_ngram_size", c.repeated_ngram_size, "must be >= 1");
  need(c.repeated_ngram_penalty >= 0, "repeated_ngram_penalty", c.repeated_ngram_penalty, "must be >= 0");
}

// c's sampling fields into j; the length floor and the repetition penalty only when set, so
// checkpoints from before them resume.
template <class Config>
void add_sampling_json(nlohmann::json& j, const Config& c) {
  j["response_length"] = c.response_length;
  j["eos_token_id"] = c.eos_token_id;
  j["missing_eos_penalty"] = c.missing_eos_penalty;
  j["seed"] = c.seed;
  if (c.short_response_penalty != 0)
    j["min_response_length"] = c.min_response_length, j["short_response_penalty"] = c.short_response_penalty;
  if (c.repeated_ngram_penalty != 0)
    j["repeated_ngram_size"] = c.repeated_ngram_size, j["repeated_ngram_penalty"] = c.repeated_ngram_penalty;
}

}  // namespace p4lm::rl
