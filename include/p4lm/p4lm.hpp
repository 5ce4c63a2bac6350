#pragma once
// p4lm: the umbrella header of the CPU library: every public header, folder by folder in layer order
// (docs/architecture.md, "Layers"). CUDA users also include <p4lm/cuda.hpp> from a translation unit
// compiled by nvcc. Any header below p4lm/<folder>/ may be included on its own for faster builds;
// headers under a detail/ folder are internal and may change without notice. scripts/check_layering.py
// checks that this list is complete.

#include "p4lm/version.hpp"

// core: errors, backend tags, configuration, progress, tensors, random numbers, gradient checks
#include "p4lm/core/backend.hpp"
#include "p4lm/core/config.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/host_device.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/shape_check.hpp"
#include "p4lm/core/tensor.hpp"
#include "p4lm/core/tensor_view.hpp"

// file formats: CSV, JSONL, safetensors, GGUF, llama2.c; atomic files, metrics files, output locks
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/csv.hpp"
#include "p4lm/io/documents.hpp"
#include "p4lm/io/finite.hpp"
#include "p4lm/io/gguf.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/llama2c.hpp"
#include "p4lm/io/metrics.hpp"
#include "p4lm/io/output_lock.hpp"
#include "p4lm/io/safetensors.hpp"

// backends: the CPU kernels and the tensors of every backend this compiler builds
#include "p4lm/backend/cpu/blas.hpp"
#include "p4lm/backend/cpu/simd.hpp"
#include "p4lm/backend/cpu/skinny_gemm.hpp"
#include "p4lm/backend/tensors.hpp"

// ops: forward/backward pairs
#include "p4lm/ops/adamw.hpp"
#include "p4lm/ops/all_backends.hpp"
#include "p4lm/ops/attention.hpp"
#include "p4lm/ops/clip_grad_norm.hpp"
#include "p4lm/ops/dropout.hpp"
#include "p4lm/ops/dropout_mask.hpp"
#include "p4lm/ops/embedding.hpp"
#include "p4lm/ops/gelu.hpp"
#include "p4lm/ops/layernorm.hpp"
#include "p4lm/ops/logprob_gather.hpp"
#include "p4lm/ops/losses.hpp"
#include "p4lm/ops/matmul.hpp"
#include "p4lm/ops/ops.hpp"
#include "p4lm/ops/residual.hpp"
#include "p4lm/ops/rmsnorm.hpp"
#include "p4lm/ops/rope.hpp"
#include "p4lm/ops/shape_checks.hpp"
#include "p4lm/ops/softmax.hpp"
#include "p4lm/ops/softmax_cross_entropy.hpp"
#include "p4lm/ops/swiglu.hpp"

// modules: parameters, Linear, norms, MLP, Attention, Block, Embedding; AdamW and schedules
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/attention.hpp"
#include "p4lm/nn/block.hpp"
#include "p4lm/nn/embedding.hpp"
#include "p4lm/nn/linear.hpp"
#include "p4lm/nn/mlp.hpp"
#include "p4lm/nn/norm.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/nn/parameter_set.hpp"
#include "p4lm/nn/schedule.hpp"
#include "p4lm/nn/workspace.hpp"

// data parallelism over MPI (one process alone without P4LM_ENABLE_MPI)
#include "p4lm/dist/communicator.hpp"
#include "p4lm/dist/environment.hpp"
#include "p4lm/dist/gradient_reducer.hpp"
#include "p4lm/dist/shard.hpp"

// tokenizers and the chat template
#include "p4lm/text/byte_level.hpp"
#include "p4lm/text/chat_template.hpp"
#include "p4lm/text/gguf_tokenizer.hpp"
#include "p4lm/text/gpt2_tokenizer.hpp"
#include "p4lm/text/llama2c_tokenizer.hpp"
#include "p4lm/text/tokenizer.hpp"
#include "p4lm/text/wordpiece_tokenizer.hpp"

// collaborative filtering on MovieLens
#include "p4lm/cf/als.hpp"
#include "p4lm/cf/baselines.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/implicit_als.hpp"
#include "p4lm/cf/metrics.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/cf/split.hpp"
#include "p4lm/cf/widths.hpp"

// the pitch data: catalog, profiles, teacher, datasets
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/data/profile.hpp"
#include "p4lm/data/teacher.hpp"

// language models, the CF adapter, the sentence encoder, generation, checkpoints
#include "p4lm/model/arch.hpp"
#include "p4lm/model/bert_encoder.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/model/gguf_model.hpp"
#include "p4lm/model/kv_cache.hpp"

// evaluation: the gold judge (never trained on) and SVG plots
#include "p4lm/eval/catalog_file.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/eval/gold_pitch_file.hpp"
#include "p4lm/eval/gold_validation.hpp"
#include "p4lm/eval/heldout_ratings.hpp"
#include "p4lm/eval/lexicon.hpp"
#include "p4lm/eval/svg_plot.hpp"

// training: the one Trainer loop, its objectives and callbacks, the SFT warm start
#include "p4lm/train/callbacks.hpp"
#include "p4lm/train/checkpointing.hpp"
#include "p4lm/train/concepts.hpp"
#include "p4lm/train/finite_guard.hpp"
#include "p4lm/train/next_token.hpp"
#include "p4lm/train/pitch_model.hpp"
#include "p4lm/train/pitch_writer.hpp"
#include "p4lm/train/prompt_format.hpp"
#include "p4lm/train/sft.hpp"
#include "p4lm/train/sft_data.hpp"
#include "p4lm/train/sft_objective.hpp"
#include "p4lm/train/soft_prompt.hpp"
#include "p4lm/train/trainer.hpp"
#include "p4lm/train/warm_start.hpp"

// the learned rewards and their weighted mix
#include "p4lm/reward/appeal.hpp"
#include "p4lm/reward/head.hpp"
#include "p4lm/reward/head_objectives.hpp"
#include "p4lm/reward/model_file.hpp"
#include "p4lm/reward/personalization.hpp"
#include "p4lm/reward/precision.hpp"
#include "p4lm/reward/preference_relevance.hpp"
#include "p4lm/reward/reward_mix.hpp"
#include "p4lm/reward/reward_model.hpp"
#include "p4lm/reward/text_features.hpp"
#include "p4lm/reward/training.hpp"

// reinforcement learning: PPO with a KL penalty and the KL-regularised policy gradient (RLOO)
#include "p4lm/rl/gae.hpp"
#include "p4lm/rl/greedy_generate.hpp"
#include "p4lm/rl/kl_controller.hpp"
#include "p4lm/rl/kl_estimator.hpp"
#include "p4lm/rl/masked.hpp"
#include "p4lm/rl/metrics.hpp"
#include "p4lm/rl/minibatch.hpp"
#include "p4lm/rl/pitch_policy.hpp"
#include "p4lm/rl/policy.hpp"
#include "p4lm/rl/policy_gradient.hpp"
#include "p4lm/rl/ppo_config.hpp"
#include "p4lm/rl/ppo_loss.hpp"
#include "p4lm/rl/ppo_trainer.hpp"
#include "p4lm/rl/reward_function.hpp"
#include "p4lm/rl/rl_state.hpp"
#include "p4lm/rl/rl_trainer.hpp"
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"
#include "p4lm/rl/value_head.hpp"

// the pipeline: each stage as a library call, and the main job
#include "p4lm/pipeline/cf_stage.hpp"
#include "p4lm/pipeline/data_stage.hpp"
#include "p4lm/pipeline/evaluation_stage.hpp"
#include "p4lm/pipeline/inventory.hpp"
#include "p4lm/pipeline/pitch_stage.hpp"
#include "p4lm/pipeline/reproduce.hpp"
#include "p4lm/pipeline/rl_stage.hpp"
#include "p4lm/pipeline/run.hpp"
#include "p4lm/pipeline/run_config.hpp"
#include "p4lm/pipeline/sft_stage.hpp"
