#pragma once
// p4lm's CUDA backend. Include from translation units compiled by nvcc (link p4lm::cuda). It pulls in
// only what CUDA code needs, not the xtensor-based CPU umbrella (xtensor is slow to compile under nvcc);
// a .cu file that also needs CPU tensors includes those headers itself.

#ifndef __CUDACC__
#error "<p4lm/cuda.hpp> must be compiled by nvcc (a .cu file); CPU users include <p4lm/p4lm.hpp> only."
#endif

#include "p4lm/backend/tags.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/version.hpp"

#include "p4lm/backend/cuda/device.cuh"
