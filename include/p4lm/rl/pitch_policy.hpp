#pragma once
// The P4LM policy: the warm-started pitch model (LM + CF adapter through SoftPrompt's layout) as an
// rl::Policy, and its prompts exactly as SFT trained them.
//
//   position  0      1 .. 2                  3 ...
//             BOS    user, item soft tokens  item prompt text (without BOS) + "\nPitch:", response
//
//   auto run = rl::PitchPolicyLoader::open("runs/main/sft/model.safetensors");
//   run.with_policy([&](auto policy) {                  // rl::PitchPolicy<Dim>, Dim from the file
//     auto prompts = rl::PitchPrompter(run, sources, policy.prefix().keys());
//     rl::Prompt p = prompts.prompt(414, 6);             // key: the (user, movie) pair's row in keys()
//     rl::PPOTrainer<decltype(policy), Reward> ppo(std::move(policy), reward, cfg);
//   });
//
// The prefix producer (CFPrefix) trains the adapter with the LM; BOS's embedding row gets the
// gradient of position 0 through the LM's token embedding. A prompt's key indexes a PitchKeys table
// shared by the policy and its reference clone: the reward reads the same table to know which user
// and movie a sample is about.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/io/safetensors.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/train/pitch_model.hpp"
#include "p4lm/train/pitch_writer.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/soft_prompt.hpp"
#include "p4lm/train/warm_start.hpp"

namespace p4lm::rl {

// (user, movie) pairs by prompt key, with their CF rows. Keys are handed out in order of first use.
class PitchKeys {
 public:
  struct Pair {
    std::int64_t user_id = 0, movie_id = 0;
    cf::Index user_row = 0, item_row = 0;
  };
  explicit PitchKeys(train::CfRows rows) : rows_(std::move(rows)) {}

  // InvalidArgument when the user or the movie has no CF embedding.
  std::size_t key(std::int64_t user_id, std::int64_t movie_id) {
    const auto found = index_.find({user_id, movie_id});
    if (found != index_.end()) return found->second;
    const cf::Index u = rows_.user_row(user_id), i = rows_.item_row(movie_id);
    if (u < 0) fail<InvalidArgument>("pitch policy: user ", user_id, " has no CF embedding");
    if (i < 0) fail<InvalidArgument>("pitch policy: movie ", movie_id, " has no CF embedding");
    pairs_.push_back({user_id, movie_id, u, i});
    index_.emplace(std::make_pair(user_id, movie_id), pairs_.size() - 1);
    return pairs_.size() - 1;
  }
  const Pair& at(std::size_t key) const {
    if (key >= pairs_.size())
      fail<InvalidArgument>("pitch policy: prompt key ", key, " was never handed out (", pairs_.size(),
                            " keys)");
    return pairs_[key];
  }
  std::size_t size() const noexcept { return pairs_.size(); }

 private:
  train::CfRows rows_;
  std::vector<Pair> pairs_;
  std::map<std::pair<std::int64_t, std::int64_t>, std::size_t> index_;
};

// PrefixProducer: [wte[BOS], adapter(user, item)] for each prompt key (train/soft_prompt.hpp).
template <class Model, int Dim>
class CFPrefix {
 public:
  using Adapter = CFAdapter<Dim, 1, float>;
  using T = typename Model::value_type;
  using View = TensorView<backend::cpu, T>;

  CFPrefix(Adapter adapter, std::int32_t bos, std::shared_ptr<const cf::Embeddings<Dim>> cf,
           std::shared_ptr<PitchKeys> keys)
      : adapter_(std::move(adapter)), soft_(bos), cf_(std::move(cf)), keys_(std::move(keys)) {}

  std::size_t length() const noexcept { return train::SoftPrompt<Model, Adapter>::length; }
  void forward(View out, Model& lm, std::span<const std::size_t> keys) {
    // A mixture adapter mixes the LM's own token table: bind the one of the LM it runs with.
    if (adapter_.vocabulary()) adapter_.use_vocabulary(lm.parameters()[0].value);
    users_.clear(), items_.clear();
    for (const std::size_t k : keys) {
      const auto& p = keys_->at(k);
      users_.push_back(p.user_row), items_.push_back(p.item_row);
    }
    soft_.forward(out, lm, adapter_, *cf_, users_, items_);
  }
  void backward(Model& lm, const View& dprefix) { soft_.backward(lm, adapter_, dprefix); }
  std::span<Parameter<T>> parameters() noexcept { return adapter_.parameters(); }
  CFPrefix clone() const { return CFPrefix(adapter_.clone(), soft_.bos(), cf_, keys_); }
  void zero_grad() { adapter_.zero_grad(); }

  Adapter& adapter() noexcept { return adapter_; }
  PitchKeys& keys() noexcept { return *keys_; }
  std::shared_ptr<PitchKeys> shared_keys() const noexcept { return keys_; }

 private:
  Adapter adapter_;
  train::SoftPrompt<Model, Adapter> soft_;
  std::shared_ptr<const cf::Embeddings<Dim>> cf_;
  std::shared_ptr<PitchKeys> keys_;
  std::vector<cf::Index> users_, items_;
};

template <int Dim>
using PitchPolicy = PrefixedPolicy<LlamaLM<float>, CFPrefix<LlamaLM<float>, Dim>>;

// What a warm-started pitch model file says about itself (metadata "pitch_model", train/warm_start.hpp).
class PitchPolicyLoader {
 public:
  // cf_path / tokenizer override what the model file recorded (empty: the recorded ones). `model` is
  // an SFT run folder (its model.safetensors) or the model file itself.
  static PitchPolicyLoader open(const std::filesystem::path& model, const std::filesystem::path& cf_path = {},
                                const std::filesystem::path& tokenizer = {}) {
    PitchPolicyLoader l;
    l.file_ = std::filesystem::is_directory(model) ? model / "model.safetensors" : model;
    if (!std::filesystem::exists(l.file_))
      fail<InvalidArgument>("pitch policy: ", l.file_.string(), " does not exist (run p4lm sft first)");
    const auto st = io::SafetensorsFile::open(l.file_);
    const auto it = st.metadata().find("pitch_model");
    if (it == st.metadata().end())
      throw ParseError(l.file_, 0, "__metadata__",
                       "not a pitch model (no 'pitch_model' entry; see p4lm sft)");
    const auto info = nlohmann::json::parse(it->second);
    l.config_ = checkpoint_model_config(st);
    if (l.config_.arch == "gpt2")
      throw ParseError(l.file_, 0, "config.arch", "the RL stage trains Llama pitch models; this one is gpt2");
    if (info.at("conditioning").get<std::string>() != "cf")
      throw ParseError(l.file_, 0, "pitch_model.conditioning",
                       "the RL policy needs a CF-conditioned model, this one is conditioned on text");
    if (info.value("prefix", std::string("soft_tokens")) != "bos_then_soft_tokens")
      throw ParseError(l.file_, 0, "pitch_model.prefix",
                       "written with the soft tokens before BOS; the RL policy needs the BOS-first layout "
                       "(re-run p4lm sft)");
    l.dim_ = info.at("cf_dim").get<int>();
    l.top_layers_ = info.value("train_top_layers", std::size_t{0});
    l.hidden_ = info.value("adapter_hidden", std::size_t{0});
    l.mixture_ = info.value("adapter_output", std::string("vectors")) == "vocabulary_mixture";
    l.prompt_.max_prompt_tokens = info.at("max_prompt_tokens");
    l.prompt_.max_pitch_tokens = info.at("max_pitch_tokens");
    l.prompt_.first_sentence_only = info.at("first_sentence_only");
    l.prompt_.marker = info.at("marker");
    l.cf_ = cf_path.empty() ? std::filesystem::path(info.value("cf", "")) : cf_path;
    if (l.cf_.empty())
      fail<InvalidArgument>(l.file_.string(), ": CF-conditioned model, but no CF embeddings given");
    auto base =
        train::base_codec(info.value("base", std::string()), l.config_,
                          tokenizer.empty() ? std::filesystem::path(info.value("tokenizer", "")) : tokenizer);
    l.codec_ = std::move(base.codec);
    l.format_ = base.format;
    if (const auto recorded = train::parse_prompt_format(info.value("prompt_format", std::string()));
        recorded != l.format_ && tokenizer.empty())
      throw ParseError(l.file_, 0, "pitch_model.prompt_format",
                       std::string("recorded ") + train::to_string(recorded) + ", but its base's tokenizer " +
                           l.codec_.name + " gives " + train::to_string(l.format_));
    return l;
  }

  const std::filesystem::path& file() const noexcept { return file_; }
  const ModelConfig& config() const noexcept { return config_; }
  const train::TextCodec& codec() const noexcept { return codec_; }
  const train::PromptOptions& prompt_options() const noexcept { return prompt_; }
  train::PromptFormat prompt_format() const noexcept { return format_; }
  int cf_dim() const noexcept { return dim_; }
  const std::filesystem::path& cf_path() const noexcept { return cf_; }

  // Loads the policy with the adapter width the file records and calls f(PitchPolicy<Dim>).
  template <class F>
  decltype(auto) with_policy(F&& f) const {
    return train::with_adapter_dim(dim_, [&](auto d) { return f(load<decltype(d)::value>()); });
  }

  template <int Dim>
  PitchPolicy<Dim> load() const {
    using Adapter = CFAdapter<Dim, 1, float>;
    if (Dim != dim_) fail<InvalidArgument>(file_.string(), ": CF width ", dim_, ", asked to load ", Dim);
    LlamaLM<float> lm(config_);
    Adapter adapter(config_.d_model, hidden_, mixture_ ? config_.vocab_size : 0);
    if (mixture_) adapter.use_vocabulary(lm.parameters()[0].value);
    {
      train::PitchModel<LlamaLM<float>, Adapter> bundle(lm, &adapter);
      load_checkpoint_into(bundle, file_);
    }
    // RL trains what the warm start's stage 2 trained: everything, or with train_top_layers the
    // adapters, the top blocks and the final norm (the frozen rest costs no weight gradients and no
    // AdamW moments, which is what makes RL on a 135M model affordable on a CPU).
    const std::size_t L = config_.n_layers;
    const bool partial = top_layers_ > 0 && top_layers_ < L;
    for (auto& p : lm.parameters()) {
      const auto block = train::PitchModel<LlamaLM<float>, Adapter>::block_of(p.name);
      p.trainable = !partial || p.name == "norm.weight" || (block && *block >= L - top_layers_);
    }
    for (auto& p : adapter.parameters()) p.trainable = true;
    auto cf = std::make_shared<const cf::Embeddings<Dim>>(cf::load_embeddings<Dim>(cf_));
    auto keys = std::make_shared<PitchKeys>(train::CfRows(*cf));
    return PitchPolicy<Dim>(std::move(lm), CFPrefix<LlamaLM<float>, Dim>(std::move(adapter), codec_.bos,
                                                                         std::move(cf), std::move(keys)));
  }

 private:
  std::filesystem::path file_, cf_;
  ModelConfig config_;
  train::TextCodec codec_;
  train::PromptOptions prompt_;
  train::PromptFormat format_ = train::PromptFormat::plain;
  int dim_ = 0;
  std::size_t hidden_ = 0, top_layers_ = 0;
  bool mixture_ = false;
};

// Prompts as SFT trained them (the base's prompt format): the item prompt + marker, without the BOS
// the prefix already holds.
class PitchPrompter {
 public:
  PitchPrompter(const PitchPolicyLoader& loader, const train::PitchSources& sources, PitchKeys& keys)
      : codec_(loader.codec()),
        options_(loader.prompt_options()),
        format_(loader.prompt_format()),
        sources_(&sources),
        keys_(&keys) {}

  Prompt prompt(std::int64_t user_id, std::int64_t movie_id) {
    const auto r = sources_->request(user_id, movie_id);
    auto ids = train::format_prompt(
        codec_, format_, train::item_prompt(r.title, r.year, r.genres, r.overview, options_), options_);
    ids.erase(ids.begin());  // BOS sits in the prefix
    return {.key = keys_->key(user_id, movie_id), .ids = std::move(ids)};
  }
  const train::TextCodec& codec() const noexcept { return codec_; }

 private:
  train::TextCodec codec_;
  train::PromptOptions options_;
  train::PromptFormat format_;
  const train::PitchSources* sources_;
  PitchKeys* keys_;
};

}  // namespace p4lm::rl
