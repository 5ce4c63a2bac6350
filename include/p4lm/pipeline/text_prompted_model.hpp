#pragma once
// A pitch model that reads the user as text in its prompt and has no CF prefix: the base LM with no
// fine-tuning (Table 1's Base row) or a model of SFT-Text (train::Conditioning::text). Its prompt is
// SFT-Text's (train::text_prompt: the profile, then the movie) in the base's format (ChatML for
// SmolLM2-Instruct); the base gets the task in words first (train::zero_shot_prompt), since no
// fine-tuning taught it by example. Decoding is greedy and batched through the KV-cache generator, as
// for the CF-conditioned rows (evaluation_stage.hpp).
//
//   auto base = p4lm::pipeline::TextPromptedModel::base("smollm2", {}, prompt_options);
//   auto sft_text = p4lm::pipeline::TextPromptedModel::open("runs/reproduce/seed-1/sft-text/sft");
//   auto ids = base.prompt(sources.request(414, 6));   // BOS first
//   auto g = base.greedy({ids}, {.max_new_tokens = 64});  // g.tokens[i] end with EOS when it came

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/train/pitch_writer.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/warm_start.hpp"

namespace p4lm::pipeline {

// The conditioning a pitch model file (metadata "pitch_model", train/warm_start.hpp) records.
inline train::Conditioning pitch_model_conditioning(const std::filesystem::path& model) {
  const auto file = std::filesystem::is_directory(model) ? model / "model.safetensors" : model;
  const auto st = io::SafetensorsFile::open(file);
  const auto it = st.metadata().find("pitch_model");
  if (it == st.metadata().end())
    throw ParseError(file, 0, "__metadata__", "not a pitch model (no 'pitch_model' entry; see p4lm sft)");
  return train::parse_conditioning(nlohmann::json::parse(it->second).at("conditioning").get<std::string>());
}

class TextPromptedModel {
 public:
  // The base model as the warm start loads it (train::load_base_lm: "smollm2", "stories260K", a
  // path), with its own tokenizer and prompt format, prompted zero-shot.
  static TextPromptedModel base(const std::string& base, const std::filesystem::path& tokenizer,
                                const train::PromptOptions& prompt) {
    TextPromptedModel m;
    m.lm_ = std::make_shared<AnyLM>(train::load_base_lm(base));
    auto codec = train::base_codec(base, config_of(*m.lm_), tokenizer);
    m.codec_ = std::move(codec.codec);
    m.format_ = codec.format;
    m.prompt_ = prompt;
    m.zero_shot_ = true;
    m.name_ = base;
    return m;
  }

  // An SFT-Text model: an SFT run folder (its model.safetensors) or the file; ParseError naming the
  // file when it is not a pitch model or reads CF embeddings (rl::PitchPolicyLoader loads those).
  static TextPromptedModel open(const std::filesystem::path& model) {
    const auto file = std::filesystem::is_directory(model) ? model / "model.safetensors" : model;
    if (!std::filesystem::exists(file))
      fail<InvalidArgument>("text-prompted model: ", file.string(), " does not exist (run p4lm sft first)");
    const auto st = io::SafetensorsFile::open(file);
    const auto it = st.metadata().find("pitch_model");
    if (it == st.metadata().end())
      throw ParseError(file, 0, "__metadata__", "not a pitch model (no 'pitch_model' entry; see p4lm sft)");
    const auto info = nlohmann::json::parse(it->second);
    if (info.at("conditioning").get<std::string>() != "text")
      throw ParseError(file, 0, "pitch_model.conditioning",
                       "reads CF embeddings, not the profile as text (load it with rl::PitchPolicyLoader)");
    TextPromptedModel m;
    m.prompt_.max_prompt_tokens = info.at("max_prompt_tokens");
    m.prompt_.max_pitch_tokens = info.at("max_pitch_tokens");
    m.prompt_.first_sentence_only = info.at("first_sentence_only");
    m.prompt_.marker = info.at("marker");
    m.lm_ = std::make_shared<AnyLM>(load_any_lm(file));
    auto codec = train::base_codec(info.value("base", std::string()), config_of(*m.lm_),
                                   std::filesystem::path(info.value("tokenizer", "")));
    m.codec_ = std::move(codec.codec);
    m.format_ = codec.format;
    if (const auto recorded = train::parse_prompt_format(info.value("prompt_format", std::string()));
        recorded != m.format_)
      throw ParseError(file, 0, "pitch_model.prompt_format",
                       std::string("recorded ") + train::to_string(recorded) + ", but its base's tokenizer " +
                           m.codec_.name + " gives " + train::to_string(m.format_));
    m.name_ = file.string();
    return m;
  }

  // What the model reads for a request: the profile of r.user_id (the caller puts another user's
  // there for the shuffled-profile control) and the movie.
  std::string prompt_text(const train::PitchRequest& r) const {
    const auto item = train::item_prompt(r.title, r.year, r.genres, r.overview, prompt_);
    return zero_shot_ ? train::zero_shot_prompt(r.profile, item) : train::text_prompt(r.profile, item);
  }
  std::vector<std::int32_t> prompt(const train::PitchRequest& r) const {
    return train::format_prompt(codec_, format_, prompt_text(r), prompt_);
  }

  // Greedy continuations with the settings `s` at temperature 0 and this model's EOS, `batch` prompts
  // at a time; each ends with EOS when it was emitted.
  Generation greedy(std::span<const std::vector<std::int32_t>> prompts, SamplingOptions s,
                    std::size_t batch = 16) {
    s.temperature = 0;
    s.eos = codec_.eos;
    return std::visit(
        [&](auto& lm) {
          Generator<std::decay_t<decltype(lm)>> gen(lm);
          Generation all;
          for (std::size_t first = 0; first < prompts.size(); first += batch) {
            const auto part = prompts.subspan(first, std::min(batch, prompts.size() - first));
            all.append(gen.generate(part, s));
          }
          return all;
        },
        *lm_);
  }

  const train::TextCodec& codec() const noexcept { return codec_; }
  train::PromptFormat prompt_format() const noexcept { return format_; }
  const train::PromptOptions& prompt_options() const noexcept { return prompt_; }
  bool zero_shot() const noexcept { return zero_shot_; }
  const std::string& name() const noexcept { return name_; }

 private:
  static const ModelConfig& config_of(const AnyLM& lm) {
    return std::visit([](const auto& m) -> const ModelConfig& { return m.config(); }, lm);
  }

  std::shared_ptr<AnyLM> lm_;
  train::TextCodec codec_;
  train::PromptFormat format_ = train::PromptFormat::plain;
  train::PromptOptions prompt_;
  bool zero_shot_ = false;
  std::string name_;
};

}  // namespace p4lm::pipeline
