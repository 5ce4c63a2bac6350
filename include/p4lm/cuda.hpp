#pragma once
// p4lm's CUDA backend. Include from translation units compiled by nvcc (link p4lm::cuda). It pulls in
// only what CUDA code needs, not the xtensor-based CPU umbrella (xtensor is slow to compile under nvcc);
// a .cu file that also needs CPU tensors includes those headers itself.
//
// What it provides (docs/cuda.md):
//   - Tensor<backend::cuda, T> (CudaTensor<T>): device memory, a TensorView like the CPU Tensor;
//     copy(dst, src) between any two backends, to<backend::cuda>(t) / to<backend::cpu>(t), to_vector.
//   - cuda::Context (stream + cuBLAS handle + scratch), current_context(), ContextScope, synchronize().
//   - Every op of include/p4lm/ops/ for float, same names, arguments and semantics, overloaded on
//     TensorView<backend::cuda, float>; reductions to one number return cuda::DeviceScalar.

#ifndef __CUDACC__
#error "<p4lm/cuda.hpp> must be compiled by nvcc (a .cu file); CPU users include <p4lm/p4lm.hpp> only."
#endif

#include "p4lm/core/backend.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/rng.hpp"
#include "p4lm/core/tensor_view.hpp"
#include "p4lm/version.hpp"

#include "p4lm/backend/cuda/context.cuh"
#include "p4lm/backend/cuda/device.cuh"
#include "p4lm/backend/cuda/tensor.cuh"

#include "p4lm/backend/cuda/ops.cuh"
