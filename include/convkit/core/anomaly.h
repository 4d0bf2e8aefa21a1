// convkit/core/anomaly.h — anomaly detection: find the layer where a NaN or infinity starts.
//
// Training that diverges shows up as a NaN loss many layers and steps after the cause. With
// anomaly detection on (set_detect_anomaly(true), or a DetectAnomaly guard, like PyTorch's
// torch.autograd.set_detect_anomaly), every layer checks the output of its forward and the
// gradients of its backward (input and parameters), and every loss its value and gradient;
// the first non-finite value throws a NumericalError naming the layer, the element, and
// whether what came in was already non-finite. Inside containers the message carries the
// dotted path ("features.3: Conv2d(...): forward produced NaN ..."); since the innermost
// layer checks first, the path is the layer where the problem starts. It costs one pass over
// every tensor per layer, so it is off by default: a tool for debugging, not for production.
// The switch is process-wide (an atomic flag), as in PyTorch.
#pragma once

#include <atomic>
#include <cmath>
#include <sstream>
#include <string>

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"

namespace convkit {

namespace detail {
inline std::atomic<bool>& anomaly_flag() {
  static std::atomic<bool> on{false};
  return on;
}
}  // namespace detail

/// Turns anomaly detection on or off for the whole process.
inline void set_detect_anomaly(bool on) { detail::anomaly_flag().store(on, std::memory_order_relaxed); }
/// Whether anomaly detection is on.
inline bool detect_anomaly() { return detail::anomaly_flag().load(std::memory_order_relaxed); }

/// Turns anomaly detection on for its scope and restores the previous setting after.
class DetectAnomaly {
 public:
  explicit DetectAnomaly(bool on = true) : previous_(detect_anomaly()) { set_detect_anomaly(on); }
  ~DetectAnomaly() { set_detect_anomaly(previous_); }
  DetectAnomaly(const DetectAnomaly&) = delete;
  DetectAnomaly& operator=(const DetectAnomaly&) = delete;

 private:
  bool previous_;
};

namespace detail {

/// Index of the first NaN or infinity in t, or -1.
template <typename T>
Index first_non_finite(const Tensor<T>& t) {
  for (Index i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t[i])) return i;
  return -1;
}

template <typename T>
std::string non_finite_name(T v) {
  return std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
}

/// " from a finite <what>" or "; its <what> already held NaN at element i".
template <typename T>
std::string origin(const Tensor<T>& source, const char* what) {
  const Index j = first_non_finite(source);
  std::ostringstream os;
  if (j < 0)
    os << " from a finite " << what;
  else
    os << "; its " << what << " already held " << non_finite_name(source[j]) << " at element " << j;
  return os.str();
}

/// Throws NumericalError if `produced` holds a NaN or infinity: "<who>: <step> produced NaN
/// at element i of <what> (shape)" and where it came from (`source`).
template <typename T>
void check_finite(const Tensor<T>& produced, const std::string& who, const char* step, const char* what,
                  const Tensor<T>& source, const char* source_what) {
  const Index i = first_non_finite(produced);
  CONVKIT_CHECK(i < 0, NumericalError,
                who << ": " << step << " produced " << non_finite_name(produced[i]) << " at element " << i << " of "
                    << what << " " << produced.shape() << origin(source, source_what)
                    << " (anomaly detection)");
}

/// Throws NumericalError if a loss value is NaN or infinite, saying where it came from.
template <typename T>
void check_finite_loss(T value, const char* who, const Tensor<T>& source, const char* source_what) {
  CONVKIT_CHECK(std::isfinite(value), NumericalError,
                who << ": forward produced a loss of " << non_finite_name(value) << origin(source, source_what)
                    << " (anomaly detection)");
}

}  // namespace detail
}  // namespace convkit
