#pragma once
// Every CUDA op (nvcc only): the same names, arguments and semantics as include/p4lm/ops/, overloaded
// on TensorView<backend::cuda, float>. The list is the backend's interface: a new backend provides
// each of these (docs/architecture.md, "Adding a backend").

#include "p4lm/backend/cuda/adamw.cuh"
#include "p4lm/backend/cuda/attention.cuh"
#include "p4lm/backend/cuda/clip_grad_norm.cuh"
#include "p4lm/backend/cuda/dropout.cuh"
#include "p4lm/backend/cuda/embedding.cuh"
#include "p4lm/backend/cuda/gelu.cuh"
#include "p4lm/backend/cuda/layernorm.cuh"
#include "p4lm/backend/cuda/logprob_gather.cuh"
#include "p4lm/backend/cuda/losses.cuh"
#include "p4lm/backend/cuda/matmul.cuh"
#include "p4lm/backend/cuda/residual.cuh"
#include "p4lm/backend/cuda/rmsnorm.cuh"
#include "p4lm/backend/cuda/rope.cuh"
#include "p4lm/backend/cuda/softmax_cross_entropy.cuh"
#include "p4lm/backend/cuda/swiglu.cuh"
