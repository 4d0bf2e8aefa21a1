// convkit/core/grad_mode.h — inference without keeping anything for backward (NoGradGuard).
//
// A layer's forward normally keeps what its backward needs: Conv2d and FullyConnected a copy
// of their input, an activation its output or input, BatchNorm2d its input and statistics. For
// inference that is wasted work and memory (ResNet-50 at batch 1: about a tenth of the
// forward time, measured). Inside a NoGradGuard's scope, as inside PyTorch's torch.no_grad(),
// layers compute the same outputs; Conv2d, FullyConnected, the activations, LRN and
// BatchNorm2d keep nothing and drop what an earlier forward kept (MaxPool2d still records
// its indices, and in training mode Dropout its mask).
// Backward after such a forward throws StateError. BatchNorm2d in training mode still
// updates its running statistics. The switch is per thread (layers run on the calling
// thread), and guards nest: each restores the setting it found.
#pragma once

namespace convkit {

namespace detail {
inline bool& grad_mode_flag() {
  thread_local bool on = true;
  return on;
}
}  // namespace detail

/// Whether forward passes on this thread keep what backward needs (true unless a NoGradGuard
/// is in scope, or set_grad_enabled(false) was called).
inline bool grad_enabled() { return detail::grad_mode_flag(); }

/// Turns keeping for backward on or off for this thread.
inline void set_grad_enabled(bool on) { detail::grad_mode_flag() = on; }

/// Inference for its scope: forward passes keep nothing for backward; restores the previous
/// setting after, also when an exception leaves the scope.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace convkit
