#pragma once
// Learning-rate schedule: linear warmup to the peak, then cosine decay to min_lr at total_steps
// (flat at min_lr afterwards). Steps count from 0; lr(0) is already non-zero (peak / warmup).
//
//   p4lm::WarmupCosine schedule{.peak_lr = 3e-4, .warmup_steps = 100, .total_steps = 5000};
//   double lr = schedule.lr(step);

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace p4lm {

struct WarmupCosine {
  double peak_lr = 3e-4;
  std::size_t warmup_steps = 0;
  std::size_t total_steps = 1;
  double min_lr = 0.0;

  double lr(std::size_t step) const {
    if (step < warmup_steps)
      return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    if (step >= total_steps || total_steps <= warmup_steps) return min_lr;
    const double progress =
        static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr +
           0.5 * (peak_lr - min_lr) * (1.0 + std::cos(3.141592653589793 * std::clamp(progress, 0.0, 1.0)));
  }
};

}  // namespace p4lm
