#pragma once
// The warm-start stage of the pipeline as one library call: base model + tokenizer, the pitch corpus
// from `p4lm data build`, the CF embeddings from `p4lm cf train`, then SftTrainer (both stages),
// held-out evaluation, learning curves and the trained pitch model.
//
//   p4lm::train::WarmStartOptions o;
//   o.data = "runs/main/data"; o.cf = "runs/main/cf/cf.safetensors"; o.out = "runs/main/sft";
//   auto result = p4lm::train::run_warm_start(o);     // resumes from o.out if a run was killed
//
// Base models: "stories260K" (the bundled pretrained llama2.c model, 512-piece vocabulary, 512
// positions: the default), "smollm2" (SmolLM2-135M-Instruct from the model cache, core/model_cache.hpp)
// or any GGUF Llama file (.gguf), a path (llama2.c .bin, Hugging Face GPT-2 folder or
// model.safetensors, p4lm checkpoint), or "scratch" (a randomly initialised Llama of stories260K's
// shape). The tokenizer follows the model: a GGUF file's own BPE (its bos/eos ids; prompts in ChatML,
// train/prompt_format.hpp), llama2.c's tok512.bin for other Llama models, GPT-2 BPE for GPT-2.
// sft.train_top_layers = N trains only the top N blocks + final norm in stage 2 (with the adapters):
// what makes a 135M base affordable on two cores.
//
// Artifacts in `out`: model.safetensors (LM + adapter parameters; metadata "pitch_model" says how to
// rebuild and prompt it), checkpoint.safetensors (resume), train_metrics/eval_metrics .jsonl/.csv,
// curves.svg, link_curves.svg (CF runs: held-out link loss with real and shuffled users per evaluation),
// result.json (held-out losses, with shuffled user embeddings as the control).
//
// Data parallel (`mpirun -np N p4lm sft ...`, docs/distributed.md): every rank trains, rank 0 alone
// locks `out` and writes into it; a finished run is recognised, and a killed one resumed, from rank
// 0's folder. Every rank returns the same result.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/widths.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/dist/communicator.hpp"
#include "p4lm/eval/svg_plot.hpp"
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/gguf_model.hpp"
#include "p4lm/text/gguf_tokenizer.hpp"
#include "p4lm/text/gpt2_tokenizer.hpp"
#include "p4lm/text/llama2c_tokenizer.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/sft.hpp"
#include "p4lm/train/sft_data.hpp"

namespace p4lm::train {

// ---- base model and tokenizer ----

// A randomly initialised Llama with stories260K's shape (the "scratch" base).
struct ScratchShape {
  std::size_t d_model = 64, n_layers = 5, n_heads = 8, n_kv_heads = 4, d_ff = 172, max_seq = 512;
};

// The GGUF file a base or tokenizer name stands for: "smollm2" (the model cache; an error saying how
// to fetch it when absent), a path ending in .gguf, or nothing (empty path).
inline std::filesystem::path gguf_file_of(const std::string& name) {
  if (name == "smollm2") {
    if (const auto path = smollm2_path()) return *path;
    fail<InvalidArgument>("base model smollm2: not in the model cache ", model_cache_dir().string(),
                          " (run scripts/fetch-models.sh, or set P4LM_MODELS)");
  }
  if (std::filesystem::path(name).extension() == ".gguf") return name;
  return {};
}

inline AnyLM load_base_lm(const std::string& base, const ScratchShape& scratch = {}, std::uint64_t seed = 1) {
  if (const auto gguf = gguf_file_of(base); !gguf.empty()) return load_gguf_model(gguf).model;
  if (base.empty() || base == "stories260K")
    return load_llama2c_model(data_path("tiny-lm/stories260K/stories260K.bin"));
  if (base == "scratch") {
    ModelConfig c;
    c.arch = "llama";
    c.vocab_size = text::Llama2cTokenizer::bundled().vocab_size();
    c.d_model = scratch.d_model, c.n_layers = scratch.n_layers, c.n_heads = scratch.n_heads;
    c.n_kv_heads = scratch.n_kv_heads, c.d_ff = scratch.d_ff, c.max_seq = scratch.max_seq;
    Rng rng(seed, 0x5c7a7c4ULL);
    return random_any_lm(c, rng);
  }
  return load_any_lm(base);
}

// A GGUF file's own tokenizer (text/gguf_tokenizer.hpp) with the file's bos and eos ids; encode()
// recognises its control tokens (<|im_start|>, ...) in text, as the chat format needs.
inline TextCodec gguf_codec(const std::filesystem::path& gguf) {
  const io::GgufFile f(gguf);
  auto tok = std::make_shared<text::Gpt2Tokenizer>(text::gguf_tokenizer(f));
  if (!tok->bos_id() || !tok->eos_id())
    throw ParseError(gguf, 0, tok->bos_id() ? "tokenizer.ggml.eos_token_id" : "tokenizer.ggml.bos_token_id",
                     "missing: the pitch model needs a BOS and an EOS token");
  TextCodec c;
  c.encode = [tok](std::string_view s) { return tok->encode(s); };
  c.decode = [tok](std::span<const std::int32_t> ids) { return tok->decode(ids); };
  c.bos = *tok->bos_id(), c.eos = *tok->eos_id();
  c.vocab_size = tok->vocab_size();
  c.name = "gguf " + gguf.string();
  return c;
}

// ChatML when the GGUF's BOS and EOS are <|im_start|> and <|im_end|> (SmolLM2-Instruct), else plain.
inline PromptFormat gguf_prompt_format(const TextCodec& gguf) {
  const std::int32_t ids[] = {gguf.bos, gguf.eos};
  return gguf.decode(std::span(ids, 1)) == text::ChatTemplate::im_start &&
                 gguf.decode(std::span(ids + 1, 1)) == text::ChatTemplate::im_end
             ? PromptFormat::chatml
             : PromptFormat::plain;
}

// The tokenizer that goes with a model: `path` overrides (a llama2.c tokenizer .bin, or a folder with
// GPT-2's encoder.json + vocab.bpe); otherwise the bundled one of the model's architecture.
inline TextCodec codec_for(const ModelConfig& config, const std::filesystem::path& path = {}) {
  TextCodec c;
  if (config.arch == "gpt2") {
    auto tok = std::make_shared<text::Gpt2Tokenizer>(path.empty() ? text::Gpt2Tokenizer::bundled()
                                                                  : text::Gpt2Tokenizer::from_folder(path));
    c.encode = [tok](std::string_view s) { return tok->encode(s); };
    c.decode = [tok](std::span<const std::int32_t> ids) { return tok->decode(ids); };
    c.bos = c.eos = text::Gpt2Tokenizer::eot;
    c.vocab_size = tok->vocab_size();
    c.name = path.empty() ? "gpt2 (bundled)" : "gpt2 " + path.string();
  } else {
    auto tok = std::make_shared<text::Llama2cTokenizer>(
        path.empty() ? text::Llama2cTokenizer::bundled() : text::Llama2cTokenizer::from_file(path));
    c.encode = [tok](std::string_view s) { return tok->encode(s, {.bos = false, .eos = false}); };
    c.decode = [tok](std::span<const std::int32_t> ids) { return tok->decode(ids); };
    c.bos = text::Llama2cTokenizer::bos, c.eos = text::Llama2cTokenizer::eos;
    c.vocab_size = tok->vocab_size();
    c.name = path.empty() ? "llama2c tok512 (bundled)" : "llama2c " + path.string();
  }
  if (c.vocab_size > config.vocab_size)
    fail<InvalidArgument>("tokenizer ", c.name, " has ", c.vocab_size,
                          " pieces, the model's vocabulary only ", config.vocab_size);
  return c;
}

// The codec and prompt format of a base model (warm start) or of a pitch model's recorded base
// (PitchWriter, rl::PitchPolicyLoader): `tokenizer` overrides (a GGUF file or "smollm2" brings its
// own format; otherwise codec_for's overrides, plain format), else a GGUF base's own tokenizer, else
// the bundled tokenizer of the architecture.
struct BaseCodec {
  TextCodec codec;
  PromptFormat format = PromptFormat::plain;
};
inline BaseCodec base_codec(const std::string& base, const ModelConfig& config,
                            const std::filesystem::path& tokenizer = {}) {
  const auto gguf = gguf_file_of(tokenizer.empty() ? base : tokenizer.string());
  // A GGUF model's embedding rows are its own tokenizer's pieces: another tokenizer whose vocabulary
  // merely fits (llama2.c's 512 pieces) would train on the wrong rows without a word.
  if (gguf.empty() && !gguf_file_of(base).empty())
    fail<InvalidArgument>("base model ", base, " brings its own tokenizer; the tokenizer ",
                          tokenizer.string(), " is not a GGUF file (leave the tokenizer empty)");
  if (gguf.empty()) return {codec_for(config, tokenizer), PromptFormat::plain};
  BaseCodec b{gguf_codec(gguf), PromptFormat::plain};
  if (b.codec.vocab_size > config.vocab_size)
    fail<InvalidArgument>("tokenizer ", b.codec.name, " has ", b.codec.vocab_size,
                          " pieces, the model's vocabulary only ", config.vocab_size);
  b.format = gguf_prompt_format(b.codec);
  return b;
}

// The pitch model's CF widths are the compiled list of cf/widths.hpp (each its own CFAdapter<Dim>
// type), with the same error for any other width.
template <class F>
decltype(auto) with_adapter_dim(int dim, F&& f) {
  return cf::with_cf_dim(dim, std::forward<F>(f));
}

// ---- corpus ----

// user_id -> row and movie_id -> row of the CF embeddings (index = id when the file has no id lists).
// `source` names the CF model file in errors.
struct CfRows {
  std::unordered_map<std::int64_t, cf::Index> user, item;
  std::filesystem::path source;
  template <int Dim>
  explicit CfRows(const cf::Embeddings<Dim>& e, std::filesystem::path file = {}) : source(std::move(file)) {
    for (std::size_t k = 0; k < e.n_users(); ++k)
      user.emplace(e.user_ids.empty() ? static_cast<std::int64_t>(k) : e.user_ids[k],
                   static_cast<cf::Index>(k));
    for (std::size_t k = 0; k < e.n_items(); ++k)
      item.emplace(e.item_ids.empty() ? static_cast<std::int64_t>(k) : e.item_ids[k],
                   static_cast<cf::Index>(k));
  }
  CfRows() = default;
  cf::Index user_row(std::int64_t id) const {
    const auto it = user.find(id);
    return it == user.end() ? -1 : it->second;
  }
  cf::Index item_row(std::int64_t id) const {
    const auto it = item.find(id);
    return it == item.end() ? -1 : it->second;
  }
};

// The prompt of an example under a conditioning.
inline std::string prompt_of(const data::SftExample& e, Conditioning c, const PromptOptions& o) {
  const auto item = item_prompt(e.title, e.year, e.genres, e.overview, o);
  return c == Conditioning::text ? text_prompt(e.profile, item) : item;
}

// Reads sft/<split>.jsonl and tokenizes it. clean_only drops the teacher's deliberately defective
// pitches (SFT imitates the good ones). Under CF conditioning every kept example's user and movie need
// a row in the CF model: one without is a ParseError naming the record's line, the id and the CF
// file (the data build and the CF model came from different ratings), never a silently smaller corpus.
inline std::vector<SftSequence> load_sft_split(const std::filesystem::path& data, const std::string& split,
                                               const TextCodec& codec, Conditioning c, const PromptOptions& o,
                                               const CfRows* rows, bool clean_only, std::size_t limit = 0,
                                               PromptFormat format = PromptFormat::plain) {
  const auto file = data / "sft" / (split + ".jsonl");
  std::vector<SftSequence> out;
  io::for_each_jsonl(file, [&](const nlohmann::json& j, std::size_t line) {
    if (limit && out.size() >= limit) return;
    data::SftExample e;
    try {
      e = j.get<data::SftExample>();
    } catch (const data::detail::BadField& bad) {
      throw ParseError(file, line, bad.field, bad.what());
    }
    if (clean_only && !e.defects.empty()) return;
    cf::Index user = -1, item = -1;
    if (rows) {
      user = rows->user_row(e.user_id), item = rows->item_row(e.movie_id);
      if (user < 0 || item < 0) {
        const bool by_user = user < 0;
        const std::string cf_file = rows->source.empty() ? "the CF model" : rows->source.string();
        std::ostringstream problem;
        problem << (by_user ? "user " : "movie ") << (by_user ? e.user_id : e.movie_id) << " has no row in "
                << cf_file << " (" << (by_user ? rows->user.size() : rows->item.size())
                << (by_user ? " users" : " movies")
                << "): the data build and the CF model come from different ratings; build the data with --cf "
                << cf_file << ", or give --cf the CF model the data was built with";
        throw ParseError(file, line, by_user ? "user_id" : "movie_id", problem.str());
      }
    }
    auto s = format_example(codec, format, prompt_of(e, c, o), e.pitch, o, e.link_span);
    s.user = user, s.item = item;
    s.user_id = e.user_id, s.movie_id = e.movie_id;
    out.push_back(std::move(s));
  });
  return out;
}

// ---- the stage ----

struct WarmStartOptions {
  std::filesystem::path data;  // folder of `p4lm data build`
  std::filesystem::path cf;    // cf.safetensors of `p4lm cf train` (CF conditioning)
  std::filesystem::path out = "runs/sft";
  std::string base = "stories260K";
  std::filesystem::path tokenizer;  // override of the model's bundled tokenizer
  ScratchShape scratch{};
  Conditioning conditioning = Conditioning::cf;
  std::size_t adapter_hidden = 0;  // 0: max(Dim, d_model)
  // Soft tokens as mixtures of the LM's token embeddings (CFAdapter's vocabulary output) instead of
  // free vectors (the paper's adapters).
  bool adapter_vocabulary_mixture = false;
  bool clean_only = true;
  std::size_t max_train = 0;  // training sequences (0: all)
  std::size_t max_test = 0;   // test sequences in the final evaluation (0: all)
  PromptOptions prompt{};
  SftOptions sft{};
  bool resume = true;  // continue a killed run; reuse a finished one
  // Files (name -> content) written into `out` once the first step succeeded (the CLI's config.json).
  std::map<std::string, std::string> run_files{};
};

// The options of a warm start that change its result: a resume with any of them changed is refused
// (SftTrainer lists them). Paths count as given. Free to change on resume: out, resume, max_test,
// run_files and the SFT ones sft_fingerprint leaves out (evaluation, logging, checkpoint cadence,
// stop_after, progress).
inline nlohmann::json warm_start_fingerprint(const WarmStartOptions& o) {
  return {{"data", o.data.string()},
          {"cf", o.conditioning == Conditioning::cf ? o.cf.string() : ""},
          {"base", o.base},
          {"tokenizer", o.tokenizer.string()},
          {"scratch",
           {o.scratch.d_model, o.scratch.n_layers, o.scratch.n_heads, o.scratch.n_kv_heads, o.scratch.d_ff,
            o.scratch.max_seq}},
          {"conditioning", to_string(o.conditioning)},
          {"adapter_hidden", o.adapter_hidden},
          {"adapter_vocabulary_mixture", o.adapter_vocabulary_mixture},
          {"clean_only", o.clean_only},
          {"max_train", o.max_train},
          {"max_prompt_tokens", o.prompt.max_prompt_tokens},
          {"max_pitch_tokens", o.prompt.max_pitch_tokens},
          {"first_sentence_only", o.prompt.first_sentence_only},
          {"marker", o.prompt.marker}};
}

struct WarmStartResult {
  double val_loss = NAN, test_loss = NAN, test_loss_shuffled_users = NAN;
  // The same split by the pitch's link sentence (the user-dependent tokens) and the rest.
  double test_link_loss = NAN, test_link_loss_shuffled_users = NAN, test_other_loss = NAN,
         test_other_loss_shuffled_users = NAN;
  std::size_t test_tokens = 0, test_link_tokens = 0;
  std::size_t train_sequences = 0, val_sequences = 0, test_sequences = 0, steps = 0;
  double seconds = 0;
  bool reused = false;
  nlohmann::json json() const {
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    return {{"val_loss", num(val_loss)},
            {"test_loss", num(test_loss)},
            {"test_loss_shuffled_users", num(test_loss_shuffled_users)},
            {"test_link_loss", num(test_link_loss)},
            {"test_link_loss_shuffled_users", num(test_link_loss_shuffled_users)},
            {"test_other_loss", num(test_other_loss)},
            {"test_other_loss_shuffled_users", num(test_other_loss_shuffled_users)},
            {"test_tokens", test_tokens},
            {"test_link_tokens", test_link_tokens},
            {"train_sequences", train_sequences},
            {"val_sequences", val_sequences},
            {"test_sequences", test_sequences},
            {"steps", steps}};  // no wall time: a resumed run writes the same bytes
  }
};

// Learning curves of a run folder (train loss per log record, held-out loss per evaluation) as SVG.
inline void write_learning_curves(const std::filesystem::path& run, const std::filesystem::path& svg,
                                  const std::string& title) {
  eval::Series s1{"train loss, stage 1 (adapters)", {}, {}}, s2{"train loss, stage 2 (all)", {}, {}},
      ev{"held-out loss", {}, {}, "#000000", true};
  auto read = [](const std::filesystem::path& p, auto&& f) {
    if (std::filesystem::exists(p))
      io::for_each_jsonl(p, [&](const nlohmann::json& j, std::size_t) { f(j); });
  };
  read(run / "train_metrics.jsonl", [&](const nlohmann::json& j) {
    auto& s = j.value("stage", 2.0) == 1.0 ? s1 : s2;
    if (j.at("loss").is_number())
      s.x.push_back(j.at("step").get<double>()), s.y.push_back(j.at("loss").get<double>());
  });
  read(run / "eval_metrics.jsonl", [&](const nlohmann::json& j) {
    if (j.at("eval_loss").is_number())
      ev.x.push_back(j.at("step").get<double>()), ev.y.push_back(j.at("eval_loss").get<double>());
  });
  std::vector<eval::Series> series;
  for (auto* s : {&s1, &s2, &ev})
    if (!s->x.empty()) series.push_back(*s);
  if (series.empty()) return;
  eval::write_line_plot(
      svg, series, {.title = title, .x_label = "optimizer step", .y_label = "cross-entropy per pitch token"});
}

// The held-out link-sentence loss per stage-2 evaluation with the real users' CF embeddings and with
// shuffled ones (CF runs only): the gap is what the model reads from the user's embedding. Stage 1
// (the frozen story model, losses near 4) is left out so the plot's scale shows the gap. Writes
// nothing for runs without the shuffled control.
inline void write_link_curves(const std::filesystem::path& run, const std::filesystem::path& svg,
                              const std::string& title) {
  eval::Series real{"held-out link loss, real users", {}, {}, "#000000"},
      shuffled{"held-out link loss, shuffled users", {}, {}, "#d62728", true};
  const auto eval_log = run / "eval_metrics.jsonl";
  if (!std::filesystem::exists(eval_log)) return;
  io::for_each_jsonl(eval_log, [&](const nlohmann::json& j, std::size_t) {
    const auto a = j.find("eval_link_loss"), b = j.find("eval_link_loss_shuffled_users");
    if (a == j.end() || b == j.end() || !a->is_number() || !b->is_number()) return;
    if (j.value("stage", 2.0) == 1.0) return;
    const double step = j.at("step").get<double>();
    real.x.push_back(step), real.y.push_back(a->get<double>());
    shuffled.x.push_back(step), shuffled.y.push_back(b->get<double>());
  });
  if (real.x.empty()) return;
  eval::write_line_plot(
      svg, {real, shuffled},
      {.title = title, .x_label = "optimizer step", .y_label = "cross-entropy per link token"});
}

// curves.svg and, for CF runs, link_curves.svg of the run folder o.out, from its metrics files.
inline void write_run_plots(const WarmStartOptions& o) {
  write_learning_curves(o.out, o.out / "curves.svg",
                        std::string("SFT (") + to_string(o.conditioning) + " conditioning, " + o.base + ")");
  if (o.conditioning == Conditioning::cf)
    write_link_curves(o.out, o.out / "link_curves.svg",
                      "Link sentence, real vs shuffled user embeddings (stage 2, " + o.base + ")");
}

// The plots as a Trainer callback: redrawn from the metrics files when a run (or a piece of one)
// ends, so a time-boxed run also leaves its curves so far.
struct RunPlots {
  const WarmStartOptions* options;
  template <class Trainer>
  void end_run(Trainer&) const {
    if (dist::world().is_root()) write_run_plots(*options);
  }
};

namespace detail {

template <class LM, int Dim>
WarmStartResult warm_start_impl(LM& lm, const WarmStartOptions& o, const BaseCodec& base) {
  const TextCodec& codec = base.codec;
  using Adapter = CFAdapter<Dim, 1, float>;
  const auto started = std::chrono::steady_clock::now();
  const bool with_cf = o.conditioning == Conditioning::cf;
  std::optional<cf::Embeddings<Dim>> cf;
  std::optional<Adapter> adapter;
  CfRows rows;
  if (with_cf) {
    cf = cf::load_embeddings<Dim>(o.cf);
    rows = CfRows(*cf, o.cf);
    adapter.emplace(lm.config().d_model, o.adapter_hidden,
                    o.adapter_vocabulary_mixture ? lm.config().vocab_size : 0);
    // Every architecture registers its token embedding (V, C) first (model/arch.hpp).
    if (o.adapter_vocabulary_mixture) adapter->use_vocabulary(lm.parameters()[0].value);
    // Soft tokens start at the scale of the model's token embeddings; fc1 sees unit-variance inputs.
    const auto& wte = lm.parameters()[0].value;
    double sq = 0, in_sq = 0;
    for (float v : wte.span()) sq += double(v) * v;
    for (float v : cf->users) in_sq += double(v) * v;
    Rng rng(o.sft.seed, 0xada97e4ULL);
    adapter->init_random(rng, std::sqrt(sq / double(wte.numel())),
                         std::sqrt(in_sq / double(std::max<std::size_t>(cf->users.size(), 1))));
  }
  const CfRows* r = with_cf ? &rows : nullptr;
  auto train = load_sft_split(o.data, "train", codec, o.conditioning, o.prompt, r, o.clean_only, o.max_train,
                              base.format);
  auto val = load_sft_split(o.data, "val", codec, o.conditioning, o.prompt, r, o.clean_only,
                            o.sft.eval_examples, base.format);
  auto test = load_sft_split(o.data, "test", codec, o.conditioning, o.prompt, r, o.clean_only, o.max_test,
                             base.format);
  WarmStartResult result;
  result.train_sequences = train.size(), result.val_sequences = val.size(),
  result.test_sequences = test.size();

  RunPlots plots{&o};
  SftTrainer<LM, Adapter, RunPlots> trainer(lm, adapter ? &*adapter : nullptr, cf ? &*cf : nullptr,
                                            std::move(train), std::move(val), o.sft, o.out,
                                            warm_start_fingerprint(o), o.run_files, plots);
  if (o.resume && trainer.resume() && o.sft.progress && dist::world().is_root())
    std::cerr << "sft: resuming " << o.out.string() << " at step " << trainer.position().step << '\n';
  result.val_loss = trainer.fit();
  result.steps = trainer.position().step;
  if (!trainer.done()) {  // stopped early on purpose: the checkpoint resumes it
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
  }
  const SftLoss real = trainer.evaluate_split(test);
  result.test_loss = real.loss, result.test_link_loss = real.link_loss,
  result.test_other_loss = real.other_loss;
  result.test_tokens = real.tokens, result.test_link_tokens = real.link_tokens;
  if (with_cf) {
    const SftLoss shuffled = trainer.evaluate_split(test, true, o.sft.seed);
    result.test_loss_shuffled_users = shuffled.loss,
    result.test_link_loss_shuffled_users = shuffled.link_loss;
    result.test_other_loss_shuffled_users = shuffled.other_loss;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const nlohmann::json pitch_model{
      {"conditioning", to_string(o.conditioning)},
      {"cf_dim", with_cf ? Dim : 0},
      {"adapter_tokens", 1},
      {"prefix", with_cf && o.sft.soft_tokens_after_bos ? "bos_then_soft_tokens" : "soft_tokens"},
      {"adapter_hidden", adapter ? adapter->hidden() : 0},
      {"adapter_output", adapter && adapter->vocabulary() ? "vocabulary_mixture" : "vectors"},
      {"tokenizer", o.tokenizer.string()},
      // A GGUF path absolute, so the pitch model finds its tokenizer from any folder; names as given.
      {"base", std::filesystem::path(o.base).extension() == ".gguf"
                   ? std::filesystem::absolute(o.base).string()
                   : o.base},
      {"tokenizer_name", codec.name},
      {"prompt_format", to_string(base.format)},
      {"train_top_layers", o.sft.train_top_layers},
      {"cf", with_cf ? std::filesystem::absolute(o.cf).string() : ""},
      {"max_prompt_tokens", o.prompt.max_prompt_tokens},
      {"max_pitch_tokens", o.prompt.max_pitch_tokens},
      {"first_sentence_only", o.prompt.first_sentence_only},
      {"marker", o.prompt.marker}};
  if (dist::world().is_root()) {
    trainer.save_model(o.out / "model.safetensors", {{"pitch_model", pitch_model.dump()}});
    io::write_file_atomically(o.out / "result.json", result.json().dump(2) + "\n");
  }
  return result;
}

}  // namespace detail

// Runs (or resumes) the warm start. See the file comment. A finished run folder (result.json and
// model.safetensors) is reused: its result is read back and its plots are redrawn from its metrics.
inline WarmStartResult run_warm_start(const WarmStartOptions& o) {
  const auto comm = dist::world();  // rank 0 alone locks and writes the folder
  io::OutputLock lock;              // one run per folder (the trainer inside takes it again)
  std::string finished;             // result.json of a finished run to reuse, read on rank 0
  if (comm.is_root()) {
    lock = io::OutputLock(o.out);
    if (!o.resume)
      for (const char* f :
           {"checkpoint.safetensors", "model.safetensors", "result.json", "train_metrics.jsonl",
            "train_metrics.csv", "eval_metrics.jsonl", "eval_metrics.csv", "curves.svg", "link_curves.svg"})
        std::filesystem::remove(o.out / f);
    if (o.resume && std::filesystem::exists(o.out / "result.json") &&
        std::filesystem::exists(o.out / "model.safetensors"))
      finished = io::read_file(o.out / "result.json");
  }
  comm.broadcast(finished);
  if (!finished.empty()) {
    const auto j = nlohmann::json::parse(finished);
    WarmStartResult r;
    auto num = [&](const char* k) { return j.at(k).is_number() ? j.at(k).get<double>() : NAN; };
    r.val_loss = num("val_loss"), r.test_loss = num("test_loss"),
    r.test_loss_shuffled_users = num("test_loss_shuffled_users");
    if (j.contains("test_link_loss")) {
      r.test_link_loss = num("test_link_loss"),
      r.test_link_loss_shuffled_users = num("test_link_loss_shuffled_users");
      r.test_other_loss = num("test_other_loss"),
      r.test_other_loss_shuffled_users = num("test_other_loss_shuffled_users");
      r.test_tokens = j.at("test_tokens"), r.test_link_tokens = j.at("test_link_tokens");
    }
    r.train_sequences = j.at("train_sequences"), r.val_sequences = j.at("val_sequences");
    r.test_sequences = j.at("test_sequences"), r.steps = j.at("steps"), r.seconds = j.value("seconds", 0.0);
    r.reused = true;
    if (comm.is_root()) write_run_plots(o);  // the metrics are the run's own; the plotting may be newer
    return r;
  }
  auto base = load_base_lm(o.base, o.scratch, o.sft.seed);
  return std::visit(
      [&](auto& lm) {
        const BaseCodec codec = base_codec(o.base, lm.config(), o.tokenizer);
        const int dim = o.conditioning == Conditioning::cf ? cf::embeddings_dim(o.cf) : 32;
        return with_adapter_dim(dim, [&](auto d) {
          return detail::warm_start_impl<std::decay_t<decltype(lm)>, decltype(d)::value>(lm, o, codec);
        });
      },
      base);
}

}  // namespace p4lm::train
