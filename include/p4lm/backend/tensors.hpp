#pragma once
// Owning tensors of every backend this translation unit can use: the CPU's always, CUDA's where nvcc
// compiles it. Backend-generic code (nn/, model/) includes this instead of naming a backend's header.

#include "p4lm/core/tensor.hpp"

#ifdef __CUDACC__
#include "p4lm/backend/cuda/tensor.cuh"
#endif
