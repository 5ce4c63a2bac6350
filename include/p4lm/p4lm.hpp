#pragma once
// p4lm: the umbrella header of the CPU library. CUDA users also include <p4lm/cuda.hpp> from a
// translation unit compiled by nvcc. Any header below p4lm/<folder>/ may be included on its own for
// faster builds; headers under a detail/ folder are internal and may change without notice.

#include "p4lm/version.hpp"

// core: errors, configuration, progress and metrics, tensors, random numbers
#include "p4lm/core/config.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/gradcheck.hpp"
#include "p4lm/core/metrics.hpp"
#include "p4lm/core/model_cache.hpp"
#include "p4lm/core/progress.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/shape.hpp"
#include "p4lm/core/tensor.hpp"

// backends and ops (forward/backward pairs)
#include "p4lm/core/backend.hpp"
#include "p4lm/ops/ops.hpp"

// file formats
#include "p4lm/io/atomic_file.hpp"
#include "p4lm/io/csv.hpp"
#include "p4lm/io/gguf.hpp"
#include "p4lm/io/jsonl.hpp"
#include "p4lm/io/llama2c.hpp"
#include "p4lm/io/safetensors.hpp"

// tokenizers
#include "p4lm/text/chat_template.hpp"
#include "p4lm/text/gguf_tokenizer.hpp"
#include "p4lm/text/gpt2_tokenizer.hpp"
#include "p4lm/text/llama2c_tokenizer.hpp"
#include "p4lm/text/tokenizer.hpp"
#include "p4lm/text/wordpiece_tokenizer.hpp"

// modules and language models
#include "p4lm/model/arch.hpp"
#include "p4lm/model/bert_encoder.hpp"
#include "p4lm/model/causal_lm.hpp"
#include "p4lm/model/cf_adapter.hpp"
#include "p4lm/model/checkpoint.hpp"
#include "p4lm/model/generate.hpp"
#include "p4lm/model/gguf_model.hpp"
#include "p4lm/model/kv_cache.hpp"
#include "p4lm/nn/adamw.hpp"
#include "p4lm/nn/parameter.hpp"
#include "p4lm/nn/schedule.hpp"

// collaborative filtering on MovieLens
#include "p4lm/cf/als.hpp"
#include "p4lm/cf/baselines.hpp"
#include "p4lm/cf/embeddings.hpp"
#include "p4lm/cf/implicit_als.hpp"
#include "p4lm/cf/metrics.hpp"
#include "p4lm/cf/movielens.hpp"
#include "p4lm/cf/ratings.hpp"
#include "p4lm/cf/split.hpp"

// the pitch data: catalog, profiles, teacher, datasets
#include "p4lm/data/catalog.hpp"
#include "p4lm/data/datasets.hpp"
#include "p4lm/data/profile.hpp"
#include "p4lm/data/teacher.hpp"

// evaluation output
#include "p4lm/eval/svg_plot.hpp"

// the gold judge (never trained on): catalog, held-out ratings, dictionary, scoring, validation
#include "p4lm/eval/catalog_file.hpp"
#include "p4lm/eval/gold_judge.hpp"
#include "p4lm/eval/gold_pitch_file.hpp"
#include "p4lm/eval/gold_validation.hpp"
#include "p4lm/eval/heldout_ratings.hpp"
#include "p4lm/eval/lexicon.hpp"

// the learned rewards (frozen MiniLM features + trained heads) and their weighted mix; training them
// (reward/head_objectives.hpp, reward/training.hpp) uses the shared Trainer: include those directly
#include "p4lm/reward/appeal.hpp"
#include "p4lm/reward/head.hpp"
#include "p4lm/reward/model_file.hpp"
#include "p4lm/reward/personalization.hpp"
#include "p4lm/reward/precision.hpp"
#include "p4lm/reward/preference_relevance.hpp"
#include "p4lm/reward/reward_mix.hpp"
#include "p4lm/reward/reward_model.hpp"
#include "p4lm/reward/text_features.hpp"

// reinforcement learning: PPO with a KL penalty and the KL-regularised policy gradient (RLOO)
#include "p4lm/rl/gae.hpp"
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
#include "p4lm/rl/rollout.hpp"
#include "p4lm/rl/shaped_reward.hpp"
#include "p4lm/rl/value_head.hpp"
