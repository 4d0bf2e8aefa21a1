// Crash safety of Checkpoint::save: a child process saves checkpoints in a loop and is killed
// with SIGKILL at a random moment, 100 times over. After every kill the file at the path is
// always a complete checkpoint (it loads, its checksum holds) whose contents are one of the
// versions the child wrote, never older than the last one seen: never a partial file.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <convkit/io/checkpoint.h>

#include "data/data_files.h"
#include "support/seed.h"

namespace {

using convkit::Checkpoint;
using convkit::Index;
using convkit::Shape;
using convkit::Tensor;
using convkit::testing::data_files::TempDir;

/// Saves version 1, 2, 3, ... to path until killed: 256 K floats all equal to the version,
/// and the version as text.
[[noreturn]] void save_forever(const std::string& path, long long first) {
  for (long long v = first;; ++v) {
    Checkpoint<float> c;
    c.put("weights", Tensor<float>(Shape{512, 512}, static_cast<float>(v)));
    c.put_text("version", std::to_string(v));
    c.save(path);
  }
}

TEST(CheckpointCrashSafety, KilledWhileSavingAlwaysLeavesTheLastCompleteCheckpoint) {
  TempDir dir;
  const std::string path = dir.file("loop.ckpt");
  convkit::Rng rng = convkit::testing::seeded_rng(91);
  long long last = 0;
  int kills = 0, saw_new = 0;
  const int iterations = 100;
  for (int it = 0; it < iterations; ++it) {
    const pid_t child = fork();
    ASSERT_GE(child, 0) << "fork failed";
    if (child == 0) save_forever(path, last + 1);
    // Let it write for 2–30 ms, then kill it mid-whatever-it-does.
    usleep(static_cast<useconds_t>(2000 + rng.below(28000)));
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child ended otherwise: " << status;
    ++kills;
    if (last == 0 && !std::filesystem::exists(path)) continue;  // killed before its first save finished
    const Checkpoint<float> c = Checkpoint<float>::load(path);  // throws on a partial file
    const long long v = std::stoll(c.text("version"));
    EXPECT_GE(v, last) << "iteration " << it << ": an older checkpoint came back";
    const Tensor<float>& w = c.tensor("weights");
    ASSERT_EQ(w.shape(), (Shape{512, 512}));
    for (Index i = 0; i < w.numel(); ++i) ASSERT_EQ(w[i], static_cast<float>(v)) << "iteration " << it;
    saw_new += v > last;
    last = v;
  }
  EXPECT_EQ(kills, iterations);
  EXPECT_GT(saw_new, iterations / 2) << "the child rarely finished a save; the test proves little";
  ::testing::Test::RecordProperty("kills", kills);
  ::testing::Test::RecordProperty("last_version", static_cast<int>(last));
  std::printf("%d kills, %d of them after a new complete save, last version %lld\n", kills, saw_new, last);
}

}  // namespace
