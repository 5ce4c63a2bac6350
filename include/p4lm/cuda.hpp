#pragma once
// p4lm's CUDA backend. Include from translation units compiled by nvcc (link p4lm::cuda).

#ifndef __CUDACC__
#error "<p4lm/cuda.hpp> must be compiled by nvcc (a .cu file); CPU users include <p4lm/p4lm.hpp> only."
#endif

#include "p4lm/p4lm.hpp"
