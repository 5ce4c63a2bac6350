#pragma once
// Every CPU op. The conventions all ops follow (include/p4lm/ops/README.md says more):
//
//  * Namespace p4lm::ops; a differentiable op is a pair `<op>_forward` / `<op>_backward`; an op that
//    is not (adamw_update, clip_grad_norm, batched_matmul: its gradient is itself) is named by verb.
//  * `template <Scalar T>` (float and double) over TensorView<backend::cpu, T> (alias CpuView<T>):
//    outputs first, as views by value; inputs after them as `const CpuView<T>&`. A Tensor passes for
//    either, TensorView being its base. Token ids are TensorView<backend::cpu, std::int32_t> (CpuIds).
//  * Shapes are written at the top of every function; a mismatch throws p4lm::ShapeError naming the
//    op, the argument, the expected and the actual shape. "..." = any leading dimensions.
//  * Backward ACCUMULATES (+=) into gradient buffers, llm.c style: zero them once per step. The one
//    exception says so in its name: softmax_cross_entropy_fused overwrites logits with dlogits.
//  * An optional tensor (bias, a gradient you do not need) is passed as {} and skipped.
//  * No allocation once shapes are known: caches (layernorm mean/rstd, softmax probabilities, lse)
//    and workspaces are the caller's tensors. OpenMP threads loops, OpenBLAS does the GEMMs.
//  * The CPU implementation lives in ops/<op>.hpp itself; CUDA overloads on
//    TensorView<backend::cuda, float> live in backend/cuda/<op>.cuh with the same signatures.

#include "p4lm/ops/adamw.hpp"
#include "p4lm/ops/attention.hpp"
#include "p4lm/ops/clip_grad_norm.hpp"
#include "p4lm/ops/dropout.hpp"
#include "p4lm/ops/embedding.hpp"
#include "p4lm/ops/gelu.hpp"
#include "p4lm/ops/layernorm.hpp"
#include "p4lm/ops/logprob_gather.hpp"
#include "p4lm/ops/losses.hpp"
#include "p4lm/ops/matmul.hpp"
#include "p4lm/ops/residual.hpp"
#include "p4lm/ops/rmsnorm.hpp"
#include "p4lm/ops/rope.hpp"
#include "p4lm/ops/softmax.hpp"
#include "p4lm/ops/softmax_cross_entropy.hpp"
#include "p4lm/ops/swiglu.hpp"
