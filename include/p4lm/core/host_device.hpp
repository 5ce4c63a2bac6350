#pragma once
// P4LM_HOST_DEVICE marks small functions (RNG, index math) that must give identical results on the
// CPU and in CUDA kernels; it expands to nothing when the translation unit is not compiled by nvcc.

#if defined(__CUDACC__)
#define P4LM_HOST_DEVICE __host__ __device__
#else
#define P4LM_HOST_DEVICE
#endif
