#pragma once
// p4lm: the umbrella header for the CPU library. CUDA users include <p4lm/cuda.hpp> as well, from a
// translation unit compiled by nvcc. Headers below p4lm/<folder>/ may be included on their own.

#include "p4lm/version.hpp"

#include "p4lm/core/config.hpp"
#include "p4lm/core/data_dir.hpp"
#include "p4lm/core/error.hpp"
#include "p4lm/core/metrics.hpp"
#include "p4lm/core/progress.hpp"

#include "p4lm/io/atomic_file.hpp"
