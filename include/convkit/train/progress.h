// convkit/train/progress.h — a progress line for training loops.
//
// On a terminal the bar redraws in place ("\r"): batches done, loss, running accuracy,
// images/s and time left. Elsewhere (a pipe, a log file) it prints nothing at all, so logs
// stay readable: the caller writes its own summary line, with finish()'s elapsed seconds.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "convkit/core/shape.h"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace convkit {

/// True if the stream is an interactive terminal.
inline bool is_terminal(std::FILE* f) {
#if defined(__unix__) || defined(__APPLE__)
  return ::isatty(::fileno(f)) != 0;
#else
  (void)f;
  return false;
#endif
}

class ProgressBar {
 public:
  ProgressBar(std::string label, Index total_batches, std::FILE* out = stdout)
      : label_(std::move(label)), total_(total_batches), out_(out), live_(is_terminal(out)),
        start_(std::chrono::steady_clock::now()) {}

  /// Records one more batch of `images` with its mean loss and number correct.
  void update(Index images, double loss, Index correct) {
    ++done_;
    images_ += images;
    loss_sum_ += loss * static_cast<double>(images);
    correct_ += correct;
    if (!live_) return;
    const double t = seconds();
    if (done_ != total_ && t - last_draw_ < 0.1) return;
    last_draw_ = t;
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
    const double rate = images_ / std::max(t, 1e-9);
    const double left = done_ > 0 ? t * static_cast<double>(total_ - done_) / static_cast<double>(done_) : 0.0;
    std::fprintf(out_, "\r%s [%s%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s %.0fs left   ", label_.c_str(),
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), mean_loss(), 100.0 * accuracy(), rate, left);
    std::fflush(out_);
  }

  /// Ends the bar's line (on a terminal); returns the elapsed seconds.
  double finish() {
    if (live_) std::fprintf(out_, "\n");
    return seconds();
  }

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double mean_loss() const { return images_ > 0 ? loss_sum_ / static_cast<double>(images_) : 0.0; }
  double accuracy() const { return images_ > 0 ? static_cast<double>(correct_) / static_cast<double>(images_) : 0.0; }
  Index images() const { return images_; }

 private:
  std::string label_;
  Index total_, done_ = 0, images_ = 0, correct_ = 0;
  double loss_sum_ = 0.0, last_draw_ = -1.0;
  std::FILE* out_;
  bool live_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace convkit
