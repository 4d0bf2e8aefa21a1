// Crash safety of Checkpoint::save: a child process saves checkpoints in a loop, telling the
// parent through a pipe each version it has finished saving, and is killed with SIGKILL at a
// random moment, 100 times over. The child spends nearly all its time inside save(), so the
// kills land in the middle of writing, flushing or renaming. After every kill the file at
// the path is a complete checkpoint (it loads, its checksum holds) holding the last version
// the child reported or the one after it (finished but not yet reported): never a partial
// file, never an older one.
//
// The kill comes at a random time after the child's first reported save, up to twice as long
// as that first save took, so the test adapts to slow disks and sanitizer builds.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

#include <convkit/io/checkpoint.h>

#include "data/data_files.h"
#include "support/seed.h"

namespace {

using convkit::Checkpoint;
using convkit::Index;
using convkit::Shape;
using convkit::Tensor;
using convkit::testing::data_files::TempDir;

/// Saves versions first, first + 1, ... to path until killed: 256 K floats all equal to the
/// version, and the version as text; after each save writes the version to fd.
[[noreturn]] void save_forever(const std::string& path, long long first, int fd) {
  for (long long v = first;; ++v) {
    Checkpoint<float> c;
    c.put("weights", Tensor<float>(Shape{512, 512}, static_cast<float>(v)));
    c.put_text("version", std::to_string(v));
    c.save(path);
    if (write(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) _exit(3);
  }
}

/// Reads one version from fd, waiting at most timeout_ms; returns false on timeout or EOF.
bool read_version(int fd, long long& v, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return false;
  return read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v);
}

TEST(CheckpointCrashSafety, KilledWhileSavingAlwaysLeavesTheLastCompleteCheckpoint) {
  using Clock = std::chrono::steady_clock;
  TempDir dir;
  const std::string path = dir.file("loop.ckpt");
  convkit::Rng rng = convkit::testing::seeded_rng(91);
  long long last = 0;  // the version the file held after the previous kill
  int kills = 0, unreported = 0;
  const int iterations = 100;
  for (int it = 0; it < iterations; ++it) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const auto started = Clock::now();
    const pid_t child = fork();
    ASSERT_GE(child, 0) << "fork failed";
    if (child == 0) {
      close(fds[0]);
      save_forever(path, last + 1, fds[1]);
    }
    close(fds[1]);
    long long reported = 0;
    const bool first_save = read_version(fds[0], reported, 120000);
    if (!first_save) kill(child, SIGKILL);
    ASSERT_TRUE(first_save) << "iteration " << it << ": the child finished no save in 120 s";
    // The first save took `first_us`; kill within the next two save-lengths.
    const auto first_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
    const auto span = static_cast<std::uint64_t>(std::clamp<long long>(2 * first_us, 1000, 2000000));
    usleep(static_cast<useconds_t>(rng.below(span)));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child ended otherwise: " << status;
    ++kills;
    for (long long v = 0; read_version(fds[0], v, 0);) reported = v;  // drain: the last reported save
    close(fds[0]);

    const Checkpoint<float> c = Checkpoint<float>::load(path);  // throws on a partial file
    const long long v = std::stoll(c.text("version"));
    ASSERT_TRUE(v == reported || v == reported + 1)
        << "iteration " << it << ": the file holds version " << v << " but the child last reported " << reported;
    ASSERT_GT(v, last) << "iteration " << it;
    const Tensor<float>& w = c.tensor("weights");
    ASSERT_EQ(w.shape(), (Shape{512, 512}));
    for (Index i = 0; i < w.numel(); ++i) ASSERT_EQ(w[i], static_cast<float>(v)) << "iteration " << it;
    unreported += v == reported + 1;
    last = v;
  }
  EXPECT_EQ(kills, iterations);
  ::testing::Test::RecordProperty("kills", kills);
  ::testing::Test::RecordProperty("last_version", static_cast<int>(last));
  std::printf("%d kills; %d left a save that had finished but was not yet reported; last version %lld\n", kills,
              unreported, last);
}

}  // namespace
