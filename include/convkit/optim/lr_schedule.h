// convkit/optim/lr_schedule.h — learning-rate schedules: a rate for each step (or epoch).
//
//   StepDecay:        η(t) = η₀ · γ^⌊t / step_size⌋
//   CosineAnnealing:  η(t) = η_min + (η₀ − η_min) · (1 + cos(π·min(t, T) / T)) / 2
// The caller decides whether t counts steps or epochs and passes η(t) to
// Optimizer::set_learning_rate.
#pragma once

#include <algorithm>
#include <cmath>

#include "convkit/core/error.h"

namespace convkit {

class StepDecay {
 public:
  /// @throws ValueError for base_lr < 0, step_size < 1 or gamma outside (0, 1].
  StepDecay(double base_lr, long long step_size, double gamma) : base_(base_lr), size_(step_size), gamma_(gamma) {
    CONVKIT_CHECK(std::isfinite(base_lr) && base_lr >= 0.0 && step_size >= 1 && gamma > 0.0 && gamma <= 1.0, ValueError,
                  "StepDecay: expected a finite base_lr >= 0, step_size >= 1, gamma in (0, 1], got "
                      << base_lr << ", " << step_size << ", " << gamma);
  }
  double operator()(long long t) const { return base_ * std::pow(gamma_, static_cast<double>(t / size_)); }

 private:
  double base_;
  long long size_;
  double gamma_;
};

class CosineAnnealing {
 public:
  /// @throws ValueError for total < 1 or min_lr outside [0, base_lr].
  CosineAnnealing(double base_lr, long long total, double min_lr = 0.0) : base_(base_lr), total_(total), min_(min_lr) {
    CONVKIT_CHECK(std::isfinite(base_lr) && total >= 1 && min_lr >= 0.0 && min_lr <= base_lr, ValueError,
                  "CosineAnnealing: expected total >= 1 and 0 <= min_lr <= base_lr (finite), got total "
                      << total << ", base_lr " << base_lr << ", min_lr " << min_lr);
  }
  double operator()(long long t) const {
    const double x = static_cast<double>(std::clamp<long long>(t, 0, total_)) / static_cast<double>(total_);
    return min_ + (base_ - min_) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * x));
  }

 private:
  double base_;
  long long total_;
  double min_;
};

}  // namespace convkit
