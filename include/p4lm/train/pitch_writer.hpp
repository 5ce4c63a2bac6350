#pragma once
// PitchWriter: loads a pitch model written by run_warm_start (model.safetensors: LM + CF adapter,
// metadata "pitch_model") with its CF embeddings and tokenizer, and writes a pitch for a (user,
// movie) pair: the adapter's soft tokens, the movie prompt, then p4lm::Generator (KV cache) until EOS.
//
//   auto writer = p4lm::train::PitchWriter::load("runs/main/sft/model.safetensors");
//   std::string pitch = writer.write({.user_id = 414, .title = "Heat", .year = 1995, ...}, rng);

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/sft.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/soft_prompt.hpp"
#include "p4lm/train/warm_start.hpp"

namespace p4lm::train {

struct PitchRequest {
  std::int64_t user_id = 0, movie_id = 0;
  std::string title;
  std::optional<int> year;
  std::vector<std::string> genres;
  std::string overview;
  std::string profile;  // used by text-conditioned models only
  // Use this user's CF embedding instead of user_id's (the shuffled-embedding control).
  std::optional<std::int64_t> embedding_user_id;
};

// Movie facts and user profiles from the folder `p4lm data build` wrote (catalog.jsonl, profiles.jsonl).
class PitchSources {
 public:
  explicit PitchSources(const std::filesystem::path& data) {
    io::for_each_jsonl(data / "catalog.jsonl", [&](const nlohmann::json& j, std::size_t) {
      Movie m;
      m.title = j.at("title").get<std::string>();
      if (!j.at("year").is_null()) m.year = j.at("year").get<int>();
      m.genres = j.at("genres").get<std::vector<std::string>>();
      m.overview = j.at("overview").get<std::string>();
      movies_.emplace(j.at("movie_id").get<std::int64_t>(), std::move(m));
    });
    io::for_each_jsonl(data / "profiles.jsonl", [&](const nlohmann::json& j, std::size_t) {
      profiles_.emplace(j.at("user_id").get<std::int64_t>(),
                        std::make_pair(j.at("text").get<std::string>(), j.at("split").get<std::string>()));
    });
    folder_ = data;
  }
  // InvalidArgument naming the folder when the movie or the user is unknown.
  PitchRequest request(std::int64_t user_id, std::int64_t movie_id) const {
    const auto m = movies_.find(movie_id);
    if (m == movies_.end())
      fail<InvalidArgument>("movie ", movie_id, " is not in ", (folder_ / "catalog.jsonl").string());
    const auto p = profiles_.find(user_id);
    if (p == profiles_.end())
      fail<InvalidArgument>("user ", user_id, " is not in ", (folder_ / "profiles.jsonl").string());
    return {.user_id = user_id,
            .movie_id = movie_id,
            .title = m->second.title,
            .year = m->second.year,
            .genres = m->second.genres,
            .overview = m->second.overview,
            .profile = p->second.first,
            .embedding_user_id = std::nullopt};
  }
  // "train", "val" or "test": the user's split in the pitch corpus.
  std::string split_of(std::int64_t user_id) const {
    const auto p = profiles_.find(user_id);
    return p == profiles_.end() ? std::string() : p->second.second;
  }

 private:
  struct Movie {
    std::string title;
    std::optional<int> year;
    std::vector<std::string> genres;
    std::string overview;
  };
  std::unordered_map<std::int64_t, Movie> movies_;
  std::unordered_map<std::int64_t, std::pair<std::string, std::string>> profiles_;
  std::filesystem::path folder_;
};

// Sampling defaults for pitches: long enough for the teacher's six sentences, mildly sharpened.
inline SamplingOptions pitch_sampling() {
  SamplingOptions s;
  s.max_new_tokens = 200;
  s.temperature = 0.7;
  s.top_k = 40;
  return s;
}

class PitchWriter {
 public:
  // cf_path / tokenizer override what the model file recorded (empty: use the recorded ones).
  static PitchWriter load(const std::filesystem::path& model_file, const std::filesystem::path& cf_path = {},
                          const std::filesystem::path& tokenizer = {}) {
    const auto st = io::SafetensorsFile::open(model_file);
    const auto& meta = st.metadata();
    const auto it = meta.find("pitch_model");
    if (it == meta.end())
      throw ParseError(model_file, 0, "__metadata__",
                       "not a pitch model (no 'pitch_model' entry; see p4lm sft)");
    const auto info = nlohmann::json::parse(it->second);
    const auto config = checkpoint_model_config(st);
    PitchWriter w;
    w.conditioning_ = parse_conditioning(info.at("conditioning").get<std::string>());
    w.prompt_.max_prompt_tokens = info.at("max_prompt_tokens");
    w.prompt_.max_pitch_tokens = info.at("max_pitch_tokens");
    w.prompt_.first_sentence_only = info.at("first_sentence_only");
    w.prompt_.marker = info.at("marker");
    const std::filesystem::path tok =
        tokenizer.empty() ? std::filesystem::path(info.value("tokenizer", "")) : tokenizer;
    // The base's codec and prompt format, as the warm start built them (warm_start.hpp).
    auto base = base_codec(info.value("base", std::string()), config, tok);
    w.codec_ = std::move(base.codec);
    w.format_ = base.format;
    if (const auto recorded = parse_prompt_format(info.value("prompt_format", std::string()));
        recorded != w.format_ && tokenizer.empty())
      throw ParseError(model_file, 0, "pitch_model.prompt_format",
                       std::string("recorded ") + to_string(recorded) + ", but its base's tokenizer " +
                           w.codec_.name + " gives " + to_string(w.format_));
    const std::filesystem::path cf = cf_path.empty() ? std::filesystem::path(info.value("cf", "")) : cf_path;
    const int dim = w.conditioning_ == Conditioning::cf ? info.at("cf_dim").get<int>() : 32;
    const std::size_t hidden = info.value("adapter_hidden", std::size_t{0});
    const bool mixture = info.value("adapter_output", std::string("vectors")) == "vocabulary_mixture";
    // Models written before the soft tokens moved after BOS have no "prefix" entry.
    const bool bos_first = info.value("prefix", std::string("soft_tokens")) == "bos_then_soft_tokens";
    auto build = [&](auto lm_tag, auto d) {
      using LM = typename decltype(lm_tag)::type;
      constexpr int Dim = decltype(d)::value;
      auto impl =
          std::make_shared<Impl<LM, Dim>>(config, w.conditioning_ == Conditioning::cf, hidden, mixture);
      if (impl->adapter && bos_first) impl->soft.emplace(w.codec_.bos);
      if (impl->adapter) {
        if (cf.empty())
          fail<InvalidArgument>(model_file.string(), ": CF-conditioned model, but no CF embeddings given");
        impl->cf = cf::load_embeddings<Dim>(cf);
        impl->rows = CfRows(*impl->cf);
      }
      PitchModel<LM, CFAdapter<Dim, 1, float>> bundle(impl->lm, impl->adapter ? &*impl->adapter : nullptr);
      load_checkpoint_into(bundle, model_file);
      impl->eos = w.codec_.eos;
      w.generate_ = [impl](const PitchRequest& r, const std::vector<std::int32_t>& prompt, Rng& rng,
                           const SamplingOptions& s) { return impl->generate(r, prompt, rng, s); };
    };
    with_adapter_dim(dim, [&](auto d) {
      if (config.arch == "gpt2")
        build(std::type_identity<GPT2LM<float>>{}, d);
      else
        build(std::type_identity<LlamaLM<float>>{}, d);
    });
    return w;
  }

  Conditioning conditioning() const noexcept { return conditioning_; }
  const TextCodec& codec() const noexcept { return codec_; }
  PromptFormat prompt_format() const noexcept { return format_; }

  // The prompt text the model sees for a request (after the soft tokens, if any).
  std::string prompt_text(const PitchRequest& r) const {
    const auto item = item_prompt(r.title, r.year, r.genres, r.overview, prompt_);
    return conditioning_ == Conditioning::text ? text_prompt(r.profile, item) : item;
  }

  std::string write(const PitchRequest& r, Rng& rng, const SamplingOptions& s = pitch_sampling()) const {
    const auto ids = generate_ids(r, rng, s);
    std::string text = codec_.decode(ids);
    const auto first = text.find_first_not_of(' ');
    return first == std::string::npos ? std::string() : text.substr(first);
  }

  std::vector<std::int32_t> generate_ids(const PitchRequest& r, Rng& rng,
                                         const SamplingOptions& s = pitch_sampling()) const {
    return generate_(r, format_prompt(codec_, format_, prompt_text(r), prompt_), rng, s);
  }

 private:
  template <class LM, int Dim>
  struct Impl {
    LM lm;
    std::optional<CFAdapter<Dim, 1, float>> adapter;
    std::optional<cf::Embeddings<Dim>> cf;
    CfRows rows;
    std::optional<SoftPrompt<LM, CFAdapter<Dim, 1, float>>> soft;  // BOS then the soft tokens
    Generator<LM> generator{lm};
    std::int32_t eos = 0;

    Impl(const ModelConfig& config, bool with_adapter, std::size_t hidden, bool mixture) : lm(config) {
      if (!with_adapter) return;
      adapter.emplace(config.d_model, hidden, mixture ? config.vocab_size : 0);
      if (mixture) adapter->use_vocabulary(lm.parameters()[0].value);  // the LM's token embeddings
    }

    std::vector<std::int32_t> generate(const PitchRequest& r, const std::vector<std::int32_t>& prompt,
                                       Rng& rng, SamplingOptions s) {
      const std::size_t P = soft ? soft->length : adapter ? CFAdapter<Dim, 1, float>::prefix_length : 0;
      // With BOS in the prefix the text starts after it.
      const std::vector<std::int32_t> text(prompt.begin() + (soft && !prompt.empty() ? 1 : 0), prompt.end());
      CpuTensor<float> prefix;
      if (adapter) {
        const std::int64_t uid = r.embedding_user_id.value_or(r.user_id);
        const cf::Index u = rows.user_row(uid), i = rows.item_row(r.movie_id);
        if (u < 0) fail<InvalidArgument>("pitch: user ", uid, " has no CF embedding");
        if (i < 0) fail<InvalidArgument>("pitch: movie ", r.movie_id, " has no CF embedding");
        prefix.resize(Shape{1, P, lm.config().d_model});
        const cf::Index users[] = {u}, items[] = {i};
        if (soft)
          soft->forward(prefix.view(), lm, *adapter, *cf, users, items);
        else
          adapter->forward(prefix.view(), *cf, users, items);
      }
      if (P + text.size() >= lm.config().max_seq)
        fail<InvalidArgument>("pitch: the prompt fills the model's context");
      s.max_new_tokens = std::min(s.max_new_tokens, lm.config().max_seq - P - text.size());
      s.eos = eos;
      s.seed = rng.next_u64();
      const std::vector<std::vector<std::int32_t>> prompts{text};
      auto out = generator.generate(prompts, s, adapter ? prefix.view() : TensorView<backend::cpu, float>{});
      auto& ids = out.tokens[0];
      if (!ids.empty() && ids.back() == eos) ids.pop_back();
      return ids;
    }
  };

  Conditioning conditioning_ = Conditioning::cf;
  PromptFormat format_ = PromptFormat::plain;
  PromptOptions prompt_;
  TextCodec codec_;
  std::function<std::vector<std::int32_t>(const PitchRequest&, const std::vector<std::int32_t>&, Rng&,
                                          const SamplingOptions&)>
      generate_;
};

}  // namespace p4lm::train
