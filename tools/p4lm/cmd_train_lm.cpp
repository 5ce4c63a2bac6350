// `p4lm train-lm`: trains a causal LM on a text or JSONL corpus (next-token prediction), with
// progress, metrics (metrics.jsonl / metrics.csv) and atomic checkpoints it resumes from.
//
//   p4lm train-lm --data corpus.txt --tokenizer gpt2 --arch gpt2 --d-model 128 --n-layers 4
//     --steps 2000 --out runs/lm
//   p4lm train-lm --model stories260K --data stories.jsonl --steps 200 --lr 1e-4 --out runs/ft
//
// Batches are consecutive windows of the token stream (documents joined with EOS / BOS), so the
// data position is one number, saved in the checkpoint with the optimizer state: rerunning the same
// command after an interruption continues from the last checkpoint.

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include <p4lm/core/config.hpp>
#include <p4lm/core/metrics.hpp>
#include <p4lm/core/progress.hpp>
#include <p4lm/io/atomic_file.hpp>
#include <p4lm/io/jsonl.hpp>
#include <p4lm/nn/adamw.hpp>
#include <p4lm/nn/schedule.hpp>

#include "p4lm/command.hpp"
#include "p4lm/lm_common.hpp"

namespace p4lm::cli {
namespace {

struct TrainLmConfig {
  Param<std::string> data{"", "training corpus: a text file, or JSONL with a text field (see --text-field)"};
  Param<std::string> text_field{"text", "JSONL field holding each document"};
  Param<std::string> model{"", "start from this model (empty: a new random model, see --arch)"};
  Param<std::string> tokenizer{"", lm::tokenizer_help};
  Param<std::string> arch{"gpt2", "new model: gpt2 | llama"};
  Param<int> d_model{128, "new model: width"};
  Param<int> n_layers{4, "new model: layers"};
  Param<int> n_heads{4, "new model: attention heads"};
  Param<int> n_kv_heads{0, "new model (llama): key/value heads (0: n_heads)"};
  Param<int> d_ff{0, "new model: MLP width (0: 4 d_model)"};
  Param<int> max_seq{256, "new model: context length"};
  Param<int> steps{1000, "optimizer steps in total (a resumed run continues to this count)"};
  Param<int> batch{8, "sequences per step"};
  Param<int> seq{64, "tokens per sequence"};
  Param<double> lr{3e-4, "peak learning rate", above(0)};
  Param<double> min_lr{3e-5, "final learning rate of the cosine decay", at_least(0)};
  Param<int> warmup{50, "linear warmup steps"};
  Param<double> weight_decay{0.1, "AdamW weight decay (matrices only)", at_least(0)};
  Param<double> max_grad_norm{1.0, "gradient clipping (0: none)", at_least(0)};
  Param<std::uint64_t> seed{0, "initialisation seed of a new model"};
  Param<int> save_every{100, "checkpoint every N steps (and at the end)"};
  Param<std::string> out{"runs/train-lm",
                         "output folder: checkpoint.safetensors, metrics.jsonl, metrics.csv"};
  Param<bool> resume{true, "continue from out/checkpoint.safetensors when it exists"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::TrainLmConfig, data, text_field, model, tokenizer, arch, d_model, n_layers,
                        n_heads, n_kv_heads, d_ff, max_seq, steps, batch, seq, lr, min_lr, warmup,
                        weight_decay, max_grad_norm, seed, save_every, out, resume);

namespace p4lm::cli {
namespace {

namespace fs = std::filesystem;

std::vector<std::int32_t> read_corpus(const TrainLmConfig& c, const lm::AnyTokenizer& tok) {
  std::vector<std::int32_t> stream;
  auto add = [&](const std::string& text) {
    std::visit(
        [&](const auto& t) {
          using Tok = std::decay_t<decltype(t)>;
          std::vector<std::int32_t> ids;
          if constexpr (std::is_same_v<Tok, text::Llama2cTokenizer>)
            ids = t.encode(text, {.bos = true});  // documents start with BOS (llama2.c)
          else
            ids = t.encode(text);
          stream.insert(stream.end(), ids.begin(), ids.end());
          if constexpr (std::is_same_v<Tok, text::Gpt2Tokenizer>)
            stream.push_back(*t.eos_id());  // GPT-2: EOT after
        },
        tok);
  };
  const fs::path path(*c.data);
  if (path.extension() == ".jsonl") {
    io::for_each_jsonl(path, [&](const nlohmann::json& j, std::size_t line) {
      if (!j.contains(*c.text_field) || !j[*c.text_field].is_string())
        throw ParseError(path, line, *c.text_field, "missing or not a string");
      add(j[*c.text_field].get<std::string>());
    });
  } else {
    add(io::read_file(path));
  }
  return stream;
}

template <class Model>
int train(Model& model, const TrainLmConfig& c, const std::vector<std::int32_t>& stream) {
  const std::size_t B = static_cast<std::size_t>(*c.batch), T = static_cast<std::size_t>(*c.seq);
  if (T > model.config().max_seq)
    fail<UsageError>("--seq ", T, " exceeds the model's context ", model.config().max_seq);
  if (stream.size() < T + 2) fail<UsageError>(*c.data, ": ", stream.size(), " tokens, too few for --seq ", T);
  for (const auto id : stream)
    if (static_cast<std::size_t>(id) >= model.config().vocab_size)
      fail<UsageError>("token id ", id, " from the tokenizer is outside the model's vocabulary ",
                       model.config().vocab_size);
  const fs::path out(*c.out), ckpt = out / "checkpoint.safetensors";
  fs::create_directories(out);
  AdamW<float> opt(model.parameters(), {.lr = *c.lr,
                                        .beta1 = 0.9,
                                        .beta2 = 0.95,
                                        .eps = 1e-8,
                                        .weight_decay = *c.weight_decay,
                                        .max_grad_norm = *c.max_grad_norm});
  std::size_t step = 0, position = 0;
  if (*c.resume && fs::exists(ckpt)) {
    const auto meta = load_checkpoint_into(model, ckpt, &opt);
    step = std::stoull(meta.at("step"));
    position = std::stoull(meta.at("data_position"));
    std::cerr << "resuming " << ckpt.string() << " at step " << step << '\n';
  }
  io::write_file_atomically(out / "config.json", to_json(c).dump(2) + "\n");
  const WarmupCosine schedule{.peak_lr = *c.lr,
                              .warmup_steps = static_cast<std::size_t>(*c.warmup),
                              .total_steps = static_cast<std::size_t>(*c.steps),
                              .min_lr = *c.min_lr};
  // A resumed run logs again what the killed run logged after its last checkpoint.
  MetricsSink::drop_after(static_cast<long>(step), out / "metrics.jsonl", out / "metrics.csv");
  MetricsSink metrics(out / "metrics.jsonl", out / "metrics.csv");
  std::vector<std::int32_t> ids(B * T), targets(B * T);
  const std::size_t span = stream.size() - T - 1;
  auto save = [&] {
    save_checkpoint(ckpt, model, &opt,
                    {{"step", std::to_string(step)},
                     {"data_position", std::to_string(position)},
                     {"train_config", to_json(c).dump()}});
  };
  Progress progress("train-lm", static_cast<std::uint64_t>(*c.steps), "steps");
  progress.advance(step);
  while (step < static_cast<std::size_t>(*c.steps)) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t b = 0; b < B; ++b) {
      const std::size_t start = (position + b * T) % span;
      std::copy(stream.begin() + start, stream.begin() + start + T, ids.begin() + b * T);
      std::copy(stream.begin() + start + 1, stream.begin() + start + T + 1, targets.begin() + b * T);
    }
    position = (position + B * T) % span;
    const double lr = schedule.lr(step);
    model.zero_grad();
    const float loss =
        model.forward({.ids = TensorView<backend::cpu, std::int32_t>(ids.data(), Shape{B, T}),
                       .targets = TensorView<backend::cpu, std::int32_t>(targets.data(), Shape{B, T})});
    model.backward();
    const double norm = opt.step(model.parameters(), lr);
    ++step;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics.record(static_cast<long>(step), {{"loss", loss},
                                             {"lr", lr},
                                             {"grad_norm", norm},
                                             {"tokens_per_s", static_cast<double>(B * T) / seconds}});
    progress.advance(1, "loss " + std::to_string(loss));
    if (*c.save_every > 0 && step % static_cast<std::size_t>(*c.save_every) == 0) save();
  }
  save();
  progress.finish();
  std::cout << ckpt.string() << '\n';
  return 0;
}

int run_train_lm(std::span<const std::string> args) {
  const auto c = parse_flags<TrainLmConfig>(args);
  if (c.data->empty()) fail<UsageError>("--data is required");
  if (*c.batch <= 0 || *c.seq <= 1 || *c.steps < 0)
    fail<UsageError>("--batch, --seq and --steps must be positive");
  std::optional<AnyLM> model;
  if (!c.model->empty()) model.emplace(lm::load_model(*c.model));
  // The tokenizer's default follows the model's arch (or --arch for a new model).
  const auto tok = lm::load_tokenizer(*c.tokenizer, model ? lm::is_gpt2(*model) : *c.arch == "gpt2");
  if (!model) {
    if (*c.arch != "gpt2" && *c.arch != "llama") fail<UsageError>("--arch must be gpt2 or llama");
    ModelConfig mc;
    mc.arch = *c.arch;
    mc.vocab_size = lm::vocab_of(tok);
    mc.d_model = static_cast<std::size_t>(*c.d_model);
    mc.n_layers = static_cast<std::size_t>(*c.n_layers);
    mc.n_heads = static_cast<std::size_t>(*c.n_heads);
    mc.n_kv_heads = static_cast<std::size_t>(*c.n_kv_heads);
    mc.d_ff = *c.d_ff > 0 ? static_cast<std::size_t>(*c.d_ff) : 4 * mc.d_model;
    mc.max_seq = static_cast<std::size_t>(*c.max_seq);
    mc.tied_head = true;
    try {
      mc.validate();
    } catch (const InvalidArgument& e) {
      fail<UsageError>(e.what());
    }
    Rng rng(*c.seed);
    if (mc.arch == "gpt2") {
      GPT2LM<float> m(mc);
      m.init_random(rng);
      model.emplace(std::move(m));
    } else {
      LlamaLM<float> m(mc);
      m.init_random(rng);
      model.emplace(std::move(m));
    }
  }
  const auto stream = read_corpus(c, tok);
  return std::visit([&](auto& m) { return train(m, c, stream); }, *model);
}

const Registration train_lm_registration{
    "train-lm", Command{"train a causal LM on a text/JSONL corpus (progress, metrics, resumable checkpoints)",
                        flags_help<TrainLmConfig>(), run_train_lm}};

}  // namespace
}  // namespace p4lm::cli
