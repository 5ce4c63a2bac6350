#pragma once
// Flags of `p4lm sft` (also used by `p4lm run` for its SFT stage): one reflected struct, mapped onto
// train::WarmStartOptions.

#include <cstdint>
#include <string>

#include <p4lm/core/config.hpp>
#include <p4lm/train/warm_start.hpp>

namespace p4lm::cli {

struct SftConfig {
  Param<std::string> data{"runs/main/data", "folder written by `p4lm data build` (sft/*.jsonl)"};
  Param<std::string> cf{"runs/main/cf/cf.safetensors",
                        "CF embeddings from `p4lm cf train` (cf conditioning)"};
  Param<std::string> out{"runs/main/sft", "output folder (model, checkpoint, metrics, curves, result.json)"};
  Param<std::string> conditioning{"cf", "cf (CF adapters: P4LM) or text (profile as text: SFT-Text)"};
  Param<std::string> base{
      "stories260K",
      "base model: stories260K (bundled), smollm2 (model cache; ChatML prompts), scratch, or a path (.gguf, "
      ".bin, HF GPT-2 folder/file)"};
  Param<std::string> tokenizer{
      "", "tokenizer override (llama2.c .bin, GPT-2 folder or .gguf); default follows the model"};
  Param<long> batch_size{16, "sequences per step", at_least(1)};
  Param<long> stage1_steps{150,
                           "stage 1 steps: adapters only, transformer frozen (0: single-stage ablation)"};
  Param<long> stage2_steps{2050, "stage 2 steps: everything (or see --train-top-layers)"};
  Param<long> train_top_layers{
      0, "stage 2 trains the adapters, the top N transformer blocks and the final norm only (0: all)"};
  Param<double> stage1_lr{3e-3, "peak learning rate of stage 1", above(0)};
  Param<double> stage2_lr{2e-3, "peak learning rate of stage 2", above(0)};
  Param<double> stage2_adapter_lr{1e-2, "peak learning rate of the CF adapters in stage 2 (0: --stage2-lr)"};
  Param<long> warmup_steps{20, "linear warmup steps per stage (then cosine to 10% of the peak)"};
  Param<double> weight_decay{0.0, "AdamW weight decay on matrices", at_least(0)};
  Param<double> max_grad_norm{1.0, "global gradient-norm clip", at_least(0)};
  Param<double> link_weight{20.0,
                            "weight of the link sentence's tokens in the training loss (1: plain mean)"};
  Param<long> link_weight_steps{
      450, "steps (counted over both stages) the link weight lasts, then --link-weight-after (0: all)"};
  Param<double> link_weight_after{5.0, "link weight after --link-weight-steps"};
  Param<long> eval_every{50, "held-out evaluation every N steps (and at each stage's end)"};
  Param<long> eval_examples{128, "validation sequences per evaluation"};
  Param<long> max_train{0, "training sequences (0: all clean pitches of train users)"};
  Param<long> max_test{0, "test sequences in the final evaluation (0: all)"};
  Param<long> checkpoint_every{50, "atomic checkpoint every N steps (resume loses at most this many)"};
  Param<long> max_prompt_tokens{96,
                                "prompt budget: title, year, genres, first overview sentence (+ profile)"};
  Param<long> max_pitch_tokens{200, "pitch budget (EOS included)", at_least(2)};
  Param<long> adapter_hidden{0, "hidden width of the adapters' MLPs (0: max(CF dim, d_model))"};
  Param<std::string> adapter_output{"vectors",
                                    "vectors (free soft tokens: the paper's adapters) or vocabulary-mixture "
                                    "(mixtures of token embeddings)"};
  Param<bool> soft_tokens_after_bos{
      true,
      "CF prefix is [BOS, soft tokens] (false: soft tokens before BOS, the attention sink: an ablation)"};
  Param<bool> clean_only{true,
                         "train on the teacher's clean pitches only (skip deliberately defective ones)"};
  Param<long> seed{1, "seed of the data order, adapter initialisation and the shuffled-embedding control"};
  Param<long> stop_after{0, "stop after this global step (0: run to the end); rerun to resume"};
  Param<bool> resume{true, "resume a killed run / reuse a finished one in --out"};
  Param<bool> progress{true, "show progress on stderr"};
};

inline train::WarmStartOptions warm_start_options(const SftConfig& c) {
  auto pos = [](long v, const char* flag) {
    if (v < 0) fail<UsageError>("--", flag, " must be >= 0");
    return static_cast<std::size_t>(v);
  };
  train::WarmStartOptions o;
  o.data = *c.data;
  o.cf = *c.cf;
  o.out = *c.out;
  o.base = *c.base;
  o.tokenizer = *c.tokenizer;
  try {
    o.conditioning = train::parse_conditioning(*c.conditioning);
  } catch (const InvalidArgument& e) {
    throw UsageError(std::string("--conditioning: ") + e.what());
  }
  o.adapter_hidden = pos(*c.adapter_hidden, "adapter-hidden");
  if (*c.adapter_output != "vectors" && *c.adapter_output != "vocabulary-mixture")
    fail<UsageError>("--adapter-output: expected vectors or vocabulary-mixture, got '", *c.adapter_output,
                     "'");
  o.adapter_vocabulary_mixture = *c.adapter_output == "vocabulary-mixture";
  o.clean_only = *c.clean_only;
  o.max_train = pos(*c.max_train, "max-train");
  o.max_test = pos(*c.max_test, "max-test");
  o.prompt.max_prompt_tokens = pos(*c.max_prompt_tokens, "max-prompt-tokens");
  o.prompt.max_pitch_tokens = pos(*c.max_pitch_tokens, "max-pitch-tokens");
  o.sft.batch_size = pos(*c.batch_size, "batch-size");
  if (o.sft.batch_size == 0) fail<UsageError>("--batch-size must be > 0");
  o.sft.stage1_steps = pos(*c.stage1_steps, "stage1-steps");
  o.sft.stage2_steps = pos(*c.stage2_steps, "stage2-steps");
  o.sft.train_top_layers = pos(*c.train_top_layers, "train-top-layers");
  o.sft.stage1_lr = *c.stage1_lr;
  o.sft.soft_tokens_after_bos = *c.soft_tokens_after_bos;
  o.sft.stage2_lr = *c.stage2_lr;
  if (*c.stage2_adapter_lr < 0) fail<UsageError>("--stage2-adapter-lr must be >= 0");
  o.sft.stage2_adapter_lr = *c.stage2_adapter_lr;
  o.sft.warmup_steps = pos(*c.warmup_steps, "warmup-steps");
  o.sft.weight_decay = *c.weight_decay;
  o.sft.max_grad_norm = *c.max_grad_norm;
  if (!(*c.link_weight >= 0)) fail<UsageError>("--link-weight must be >= 0");
  o.sft.link_weight = *c.link_weight;
  o.sft.link_weight_steps = pos(*c.link_weight_steps, "link-weight-steps");
  if (!(*c.link_weight_after >= 0)) fail<UsageError>("--link-weight-after must be >= 0");
  o.sft.link_weight_after = *c.link_weight_after;
  o.sft.eval_every = pos(*c.eval_every, "eval-every");
  o.sft.eval_examples = pos(*c.eval_examples, "eval-examples");
  o.sft.checkpoint_every = pos(*c.checkpoint_every, "checkpoint-every");
  o.sft.seed = static_cast<std::uint64_t>(*c.seed);
  o.sft.stop_after = pos(*c.stop_after, "stop-after");
  o.sft.progress = *c.progress;
  o.resume = *c.resume;
  return o;
}

}  // namespace p4lm::cli

BOOST_HANA_ADAPT_STRUCT(p4lm::cli::SftConfig, data, cf, out, conditioning, base, tokenizer, batch_size,
                        stage1_steps, stage2_steps, train_top_layers, stage1_lr, stage2_lr, stage2_adapter_lr,
                        warmup_steps, weight_decay, max_grad_norm, link_weight, link_weight_steps,
                        link_weight_after, eval_every, eval_examples, max_train, max_test, checkpoint_every,
                        max_prompt_tokens, max_pitch_tokens, adapter_hidden, adapter_output,
                        soft_tokens_after_bos, clean_only, seed, stop_after, resume, progress);
