#pragma once
// Every op on every backend this translation unit can use: the CPU ops always, the CUDA overloads
// (same names and signatures on TensorView<backend::cuda, float>) where nvcc compiles it. Modules call
// ops::<op>(views...) and the views' backend picks the implementation.

#include "p4lm/ops/ops.hpp"

#ifdef __CUDACC__
#include "p4lm/backend/cuda/ops.cuh"
#endif
