// `p4lm train-lm`: trains a causal LM on a text or JSONL corpus (next-token prediction) with the
// shared Trainer (train/next_token.hpp): progress, metrics.{jsonl,csv}, atomic checkpoints, resume.
//   p4lm train-lm --data corpus.txt --tokenizer gpt2 --arch gpt2 --d-model 128 --steps 2000 --out runs/lm
//   p4lm train-lm --model stories260K --data stories.jsonl --steps 200 --lr 1e-4 --out runs/ft
// Rerunning the same command continues from out/checkpoint.safetensors (a larger --steps extends a
// finished run); changed options that change the result are refused (docs/reliability.md).

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <p4lm/core/config.hpp>
#include <p4lm/io/documents.hpp>
#include <p4lm/train/next_token.hpp>

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
  Param<int> steps{1000, "optimizer steps in total (a resumed run continues to this count)", at_least(0)};
  Param<int> batch{8, "sequences per step", at_least(1)};
  Param<int> seq{64, "tokens per sequence", at_least(2)};
  Param<double> lr{3e-4, "peak learning rate", above(0)};
  Param<double> min_lr{3e-5, "final learning rate of the cosine decay", at_least(0)};
  Param<int> warmup{50, "linear warmup steps", at_least(0)};
  Param<double> weight_decay{0.1, "AdamW weight decay (matrices only)", at_least(0)};
  Param<double> max_grad_norm{1.0, "gradient clipping (0: none)", at_least(0)};
  Param<std::uint64_t> seed{0, "initialisation seed of a new model"};
  Param<int> save_every{100, "checkpoint every N steps (and at the end)", at_least(0)};
  Param<std::string> out{"runs/train-lm",
                         "output folder: checkpoint.safetensors, metrics.jsonl, metrics.csv"};
  Param<bool> resume{true, "continue from out/checkpoint.safetensors when it exists"};
  Param<bool> progress{true, "show progress on stderr"};
};

}  // namespace
}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::TrainLmConfig, data, text_field, model, tokenizer, arch, d_model, n_layers,
                        n_heads, n_kv_heads, d_ff, max_seq, steps, batch, seq, lr, min_lr, warmup,
                        weight_decay, max_grad_norm, seed, save_every, out, resume, progress);

namespace p4lm::cli {
namespace {

// The corpus's documents as one token stream.
std::vector<std::int32_t> read_corpus(const TrainLmConfig& c, const lm::AnyTokenizer& tok) {
  std::vector<std::int32_t> stream;
  io::for_each_document(*c.data, *c.text_field, [&](const std::string& text) {
    const auto ids = lm::encode_document(tok, text);
    stream.insert(stream.end(), ids.begin(), ids.end());
  });
  return stream;
}

AnyLM new_model(const TrainLmConfig& c, std::size_t vocab) {
  if (*c.arch != "gpt2" && *c.arch != "llama") fail<UsageError>("--arch must be gpt2 or llama");
  ModelConfig mc;
  mc.arch = *c.arch;
  mc.vocab_size = vocab;
  mc.d_model = static_cast<std::size_t>(*c.d_model), mc.n_layers = static_cast<std::size_t>(*c.n_layers);
  mc.n_heads = static_cast<std::size_t>(*c.n_heads), mc.n_kv_heads = static_cast<std::size_t>(*c.n_kv_heads);
  mc.d_ff = *c.d_ff > 0 ? static_cast<std::size_t>(*c.d_ff) : 4 * mc.d_model;
  mc.max_seq = static_cast<std::size_t>(*c.max_seq), mc.tied_head = true;
  try {
    mc.validate();
  } catch (const InvalidArgument& e) {
    fail<UsageError>(e.what());
  }
  Rng rng(*c.seed);
  return random_any_lm(mc, rng);
}

int run_train_lm(std::span<const std::string> args) {
  const auto c = parse_flags<TrainLmConfig>(args);
  if (c.data->empty()) fail<UsageError>("--data is required");
  // A pretrained model brings its tokenizer (a GGUF file its own, as generate and logits do); a new
  // model takes --tokenizer or the default of its architecture.
  std::optional<AnyLM> model;
  std::optional<lm::AnyTokenizer> tok;
  if (!c.model->empty()) {
    auto loaded = lm::load_model_and_tokenizer(*c.model, *c.tokenizer);
    model.emplace(std::move(loaded.model));
    tok.emplace(std::move(loaded.tokenizer));
  } else {
    tok.emplace(lm::load_tokenizer(*c.tokenizer, *c.arch == "gpt2"));
    model.emplace(new_model(c, lm::vocab_of(*tok)));
  }
  const auto model_vocab = std::visit([](const auto& m) { return m.config().vocab_size; }, *model);
  if (lm::vocab_of(*tok) > model_vocab)
    fail<UsageError>("--tokenizer: ", lm::vocab_of(*tok), " pieces, the model's vocabulary only ",
                     model_vocab);
  const auto stream = read_corpus(c, *tok);
  std::cerr << "train-lm: " << stream.size() << " tokens of " << *c.data << " (tokenizer of "
            << lm::vocab_of(*tok) << " pieces; model vocabulary " << model_vocab << ")\n";
  if (stream.size() < static_cast<std::size_t>(*c.seq) + 2)
    fail<UsageError>(*c.data, ": ", stream.size(), " tokens, too few for --seq ", *c.seq);
  train::NextTokenOptions o{.batch = static_cast<std::size_t>(*c.batch),
                            .seq = static_cast<std::size_t>(*c.seq),
                            .steps = static_cast<std::size_t>(*c.steps),
                            .lr = *c.lr,
                            .min_lr = *c.min_lr,
                            .warmup = static_cast<std::size_t>(*c.warmup),
                            .weight_decay = *c.weight_decay,
                            .max_grad_norm = *c.max_grad_norm,
                            .save_every = static_cast<std::size_t>(*c.save_every),
                            .out = *c.out,
                            .resume = *c.resume,
                            .progress = *c.progress};
  // Every flag but those that only steer the run (docs/reliability.md) must match on resume.
  auto flags = to_json(c);
  for (const char* free : {"steps", "save_every", "out", "resume", "progress"}) flags.erase(free);
  o.fingerprint = flags;
  o.run_files = {{"config.json", to_json(c).dump(2) + "\n"}};
  const auto r = std::visit([&](auto& m) { return train::train_next_token(m, stream, o); }, *model);
  std::cout << r.checkpoint.string() << '\n';
  return 0;
}

const Registration train_lm_registration{
    "train-lm", Command{"train a causal LM on a text/JSONL corpus (progress, metrics, resumable checkpoints)",
                        flags_help<TrainLmConfig>(), run_train_lm}};

}  // namespace
}  // namespace p4lm::cli
