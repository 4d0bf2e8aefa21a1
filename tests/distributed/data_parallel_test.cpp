// DataParallel over MPI. Run by ctest under `mpirun -np 2`: every rank runs every test, the
// single-process reference included, and the process exits non-zero if a test failed on
// any rank. A test that hangs (a rank left waiting in a collective) fails by ctest's timeout.
#include <convkit/distributed/mpi.h>  // first: the header compiles alone

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <convkit/convkit.h>

#include "data/data_files.h"
#include "train/train_support.h"

namespace {

using namespace convkit;
using convkit::distributed::DataParallel;
using convkit::distributed::DataParallelOptions;
using convkit::testing::data_files::TempDir;
using convkit::testing::train_support::make_data;
using convkit::testing::train_support::same_parameters;
using convkit::testing::train_support::small_model;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/// n random 1×32×32 images with random labels of 10 classes (the same on every rank).
data::Dataset<float> random_images(Index n, std::uint64_t seed) {
  Rng rng(seed);
  data::Dataset<float> d;
  d.num_classes = 10;
  d.images = Tensor<float>(Shape{n, 1, 32, 32});
  for (float& v : d.images) v = static_cast<float>(rng.normal());
  for (Index i = 0; i < n; ++i) d.labels.push_back(static_cast<Index>(rng.below(10)));
  return d;
}

/// The largest, over the parameter tensors, of max|a − b| / max|b|.
template <typename T>
double max_relative_difference(Layer<T>& a, Layer<T>& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  double worst = 0.0;
  for (std::size_t k = 0; k < pa.size(); ++k) {
    double diff = 0.0, scale = 0.0;
    for (Index i = 0; i < pb[k].param->value.numel(); ++i) {
      diff = std::max(diff, std::abs(double(pa[k].param->value[i]) - double(pb[k].param->value[i])));
      scale = std::max(scale, std::abs(double(pb[k].param->value[i])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-30));
  }
  return worst;
}

/// True on every rank iff every rank holds bit for bit rank 0's parameters.
template <typename T>
bool identical_on_all_ranks(Layer<T>& model) {
  std::vector<T> flat;
  for (Parameter<T>* p : model.parameters()) flat.insert(flat.end(), p->value.begin(), p->value.end());
  std::vector<T> root = flat;
  MPI_Bcast(root.data(), static_cast<int>(root.size() * sizeof(T)), MPI_BYTE, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.data(), flat.data(), flat.size() * sizeof(T)) == 0, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

/// Rank 0's temporary directory, known to every rank (they share this machine's disk).
std::string shared_temp_dir(const TempDir& dir) {
  std::string path = dir.str();
  int n = static_cast<int>(path.size());
  MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
  path.resize(static_cast<std::size_t>(n));
  MPI_Bcast(path.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
  return path;
}

// The criterion: 2 ranks with global batch 64 end 20 steps with the weights of one
// process with batch 64 (to 1e-5 relative; the sums are reordered), bit for bit the same
// on both ranks. The bound holds only while no max-pool window or ReLU input lies within
// rounding of its switch point at some step: there the reordered sums can take the other
// branch, and the runs part by far more. With data seeds 12-15 the runs end 1.7-2.6e-7
// apart; seed 11 did too (1.9e-7) until the direct data gradient of LeNet-5's C3 (its sums
// in another order) moved the trajectory onto such a point (2.4e-5).
TEST(DataParallel, TwentyStepsMatchOneProcessAndReplicasAreIdentical) {
  const data::Dataset<float> train = random_images(64 * 20, 12);
  Rng init_a(3), init_b(3);
  Sequential<float> reference = models::lenet5<float>(init_a);
  Sequential<float> model = models::lenet5<float>(init_b);
  SGD<float> ref_sgd(reference.named_parameters(), SgdOptions(0.05).momentum(0.9));
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.05).momentum(0.9));

  data::Batcher ref_batches(train.size(), 64), batches(train.size(), 64);
  Rng ref_shuffle(5), shuffle(5);
  const EpochStats ref_stats = train_epoch(reference, ref_sgd, train, ref_batches, ref_shuffle);

  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  const EpochStats stats = dp.train_epoch(train, batches, shuffle);
  EXPECT_EQ(sgd.steps(), 20);
  EXPECT_EQ(stats.images, 64 * 20);
  EXPECT_NEAR(stats.loss, ref_stats.loss, 1e-5 * ref_stats.loss);
  EXPECT_EQ(stats.accuracy, ref_stats.accuracy);
  const double rel = max_relative_difference(model, reference);
  EXPECT_LE(rel, 1e-5);
  // The weights moved: a run that skipped the updates would match nothing above.
  Rng init_c(3);
  Sequential<float> untrained = models::lenet5<float>(init_c);
  EXPECT_GT(max_relative_difference(model, untrained), 1e-2);
  EXPECT_TRUE(identical_on_all_ranks(model));
  if (world_rank() == 0) std::printf("[ info ] %d ranks vs 1 process after 20 steps: max relative difference %.3g\n", world_size(), rel);
}

// Bucket sizes and overlap change when sums start, not what they are: bit-identical weights.
TEST(DataParallel, BucketSizeAndOverlapDoNotChangeTheResult) {
  const data::Dataset<float> train = random_images(32 * 6, 12);
  const auto run = [&](DataParallelOptions options) {
    Rng init(4), shuffle(6);
    auto model = std::make_unique<Sequential<float>>(models::lenet5<float>(init));
    Adam<float> adam(model->named_parameters(), AdamOptions(1e-3));
    DataParallel<float> dp(MPI_COMM_WORLD, *model, adam, options);
    data::Batcher batches(train.size(), 32);
    dp.train_epoch(train, batches, shuffle);
    return std::make_pair(std::move(model), dp.num_buckets());
  };
  auto [one_bucket, n1] = run(DataParallelOptions());
  auto [many, n2] = run(DataParallelOptions().bucket_bytes(4096));
  auto [after, n3] = run(DataParallelOptions().bucket_bytes(4096).overlap(false));
  EXPECT_EQ(n1, 1u);  // LeNet-5's 61,706 parameters fit in one 25 MiB bucket
  EXPECT_EQ(n2, 7u);  // 1,024 floats a bucket: out+f6.bias | f6.weight | f5.bias | f5.weight | c3.bias | c3.weight | c1
  EXPECT_EQ(n3, n2);
  EXPECT_TRUE(same_parameters(*many, *one_bucket));
  EXPECT_TRUE(same_parameters(*after, *one_bucket));
}

// Batches that do not split evenly, down to a batch of 1 (a rank with no images), and a
// last batch smaller than the rest.
TEST(DataParallel, UnevenAndTinyBatchesMatchOneProcess) {
  for (const Index batch : {Index{1}, Index{3}, Index{16}}) {
    const data::Dataset<double> train = make_data<double>(37, 21);
    Sequential<double> reference = small_model<double>(8), model = small_model<double>(8);
    SGD<double> ref_sgd(reference.named_parameters(), SgdOptions(0.1).momentum(0.5));
    SGD<double> sgd(model.named_parameters(), SgdOptions(0.1).momentum(0.5));
    data::Batcher ref_batches(train.size(), batch), batches(train.size(), batch);
    Rng ref_shuffle(9), shuffle(9);
    train_epoch(reference, ref_sgd, train, ref_batches, ref_shuffle);
    DataParallel<double> dp(MPI_COMM_WORLD, model, sgd);
    const EpochStats stats = dp.train_epoch(train, batches, shuffle);
    EXPECT_EQ(stats.images, 37) << "batch " << batch;
    EXPECT_LE(max_relative_difference(model, reference), 1e-12) << "batch " << batch;
    EXPECT_TRUE(identical_on_all_ranks(model)) << "batch " << batch;
  }
}

// Batch norm normalises with each rank's own part; its running statistics are averaged after
// the epoch. After one step from zero, running_mean = m · (batch mean), linear in the batch:
// the ranks' average of their parts' means is the whole batch's mean, as in one process.
TEST(DataParallel, BatchNormRunningMeanIsAveragedOverRanks) {
  const auto net = [] {
    Rng rng(2);
    Sequential<double> n;
    n.add(std::make_unique<Conv2d<double>>(Conv2dOptions(1, 3, 3), rng));
    n.add(std::make_unique<BatchNorm2d<double>>(3));
    n.add(std::make_unique<ReLU<double>>());
    n.add(std::make_unique<Flatten<double>>());
    n.add(std::make_unique<FullyConnected<double>>(FullyConnectedOptions(3 * 6 * 6, 2), rng));
    return n;
  };
  const data::Dataset<double> train = make_data<double>(16, 4);
  Sequential<double> reference = net(), model = net();
  SGD<double> ref_sgd(reference.named_parameters(), SgdOptions(0.1)), sgd(model.named_parameters(), SgdOptions(0.1));
  data::Batcher ref_batches(16, 16), batches(16, 16);
  Rng ref_shuffle(1), shuffle(1);
  train_epoch(reference, ref_sgd, train, ref_batches, ref_shuffle);
  DataParallel<double> dp(MPI_COMM_WORLD, model, sgd);
  dp.train_epoch(train, batches, shuffle);
  const auto find = [](Sequential<double>& m, const std::string& name) -> Tensor<double>& {
    for (const NamedParameter<double>& p : m.named_parameters())
      if (p.name == name) return p.param->value;
    throw std::runtime_error("no parameter " + name);
  };
  const Tensor<double>& mean = find(model, "1.running_mean");
  const Tensor<double>& ref_mean = find(reference, "1.running_mean");
  for (Index c = 0; c < 3; ++c) {
    EXPECT_NE(mean[c], 0.0);
    EXPECT_NEAR(mean[c], ref_mean[c], 1e-12 * std::abs(ref_mean[c]) + 1e-15) << "channel " << c;
  }
  EXPECT_TRUE(identical_on_all_ranks(model));  // buffers included
}

TEST(DataParallel, EvaluationInPartsEqualsWholeEvaluation) {
  const data::Dataset<float> test = random_images(301, 13);
  Rng init(5);
  Sequential<float> model = models::lenet5<float>(init);
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.01));
  const EvalStats whole = evaluate(model, test, 64);
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  const EvalStats parts = dp.evaluate(test, 64);
  EXPECT_EQ(parts.confusion.counts(), whole.confusion.counts());
  EXPECT_EQ(parts.confusion.total(), 301);
  EXPECT_NEAR(parts.loss, whole.loss, 1e-6 * whole.loss);
}

// Rank 0 writes; a fresh model on every rank resumes from it and continues exactly as the
// original does, Dropout's per-rank masks included.
TEST(DataParallel, CheckpointByRankZeroResumesEveryRankExactly) {
  TempDir dir;
  const std::string path = shared_temp_dir(dir) + "/dp.ckpt";
  const data::Dataset<float> train = make_data<float>(40, 22);
  Sequential<float> model = small_model<float>(1, 2, /*dropout=*/true);
  Adam<float> adam(model.named_parameters(), AdamOptions(1e-2));
  DataParallel<float> dp(MPI_COMM_WORLD, model, adam);
  data::Batcher batches(train.size(), 8);
  Rng shuffle(3);
  dp.train_epoch(train, batches, shuffle);
  dp.save_training_state(path, 1, shuffle);

  Sequential<float> resumed = small_model<float>(77, 2, /*dropout=*/true);
  Adam<float> resumed_adam(resumed.named_parameters(), AdamOptions(1e-2));
  DataParallel<float> dp2(MPI_COMM_WORLD, resumed, resumed_adam);
  Rng resumed_shuffle(999);
  EXPECT_EQ(dp2.load_training_state(path, resumed_shuffle), 1);
  EXPECT_TRUE(same_parameters(resumed, model));
  data::Batcher batches2(train.size(), 8);
  dp.train_epoch(train, batches, shuffle);
  dp2.train_epoch(train, batches2, resumed_shuffle);
  EXPECT_TRUE(same_parameters(resumed, model));
  EXPECT_TRUE(identical_on_all_ranks(model));
  // Every rank drew its own Dropout masks: the checkpoint holds rank 1's stream apart.
  if (world_size() > 1 && world_rank() == 0) {
    const Checkpoint<float> c = Checkpoint<float>::load(path);
    ASSERT_TRUE(c.has_text("distributed.rank1.rng.layer.5"));
    EXPECT_NE(c.text("distributed.rank1.rng.layer.5"), c.text("rng.layer.5"));
  }
}

TEST(DataParallel, SaveAndLoadFailuresReachEveryRank) {
  TempDir dir;
  const std::string base = shared_temp_dir(dir);
  Sequential<float> model = small_model<float>(1);
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1));
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  Rng rng(1);
  try {
    dp.save_training_state(base + "/no/such/dir/x.ckpt", 1, rng);
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt"), std::string::npos) << e.what();
  }
  try {
    dp.load_training_state(base + "/missing.ckpt", rng);
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.ckpt"), std::string::npos) << e.what();
  }
}

// Ranks that disagree get a clear error on every rank, not a hang.
TEST(DataParallel, RanksWithDifferentModelsFailClearly) {
  Sequential<float> model = small_model<float>(1, world_rank() == 0 ? 2 : 3);
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1));
  if (world_size() == 1) GTEST_SKIP() << "needs 2 ranks";
  try {
    DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("disagree on the model"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1 has"), std::string::npos) << m;
  }
}

TEST(DataParallel, RanksWithDifferentOptionsOrDataFailClearly) {
  Sequential<float> model = small_model<float>(1);
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1));
  if (world_size() == 1) GTEST_SKIP() << "needs 2 ranks";
  const std::string mine = "--batch-size " + std::to_string(64 * (world_rank() + 1));
  try {
    DataParallel<float> dp(MPI_COMM_WORLD, model, sgd, DataParallelOptions().fingerprint(mine));
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'--batch-size 64'"), std::string::npos) << m;
    EXPECT_NE(m.find("'--batch-size 128'"), std::string::npos) << m;
  }
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  const data::Dataset<float> train = make_data<float>(world_rank() == 0 ? 20 : 24, 1);
  data::Batcher batches(train.size(), 4);
  Rng rng(1);
  try {
    dp.train_epoch(train, batches, rng);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("disagree on the training data"), std::string::npos) << e.what();
  }
}

// A NaN on one rank only: every rank stops at the same step with the trainer's error.
TEST(DataParallel, NonFiniteLossOnOneRankStopsAllRanks) {
  data::Dataset<float> train = make_data<float>(16, 2);
  if (world_rank() == world_size() - 1)
    for (float& v : train.images) v = std::numeric_limits<float>::quiet_NaN();
  Sequential<float> model = small_model<float>(1);
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1));
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  data::Batcher batches(train.size(), 8);
  Rng rng(1);
  try {
    dp.train_epoch(train, batches, rng);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("at batch 0 of the epoch"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sgd.steps(), 0);
}

// One rank's part alone is bad (a batch norm over a single 1×1 value): that rank throws
// its ShapeError, the others an Error naming it, at the same step; no rank waits forever.
TEST(DataParallel, AnErrorInOneRanksForwardStopsAllRanks) {
  if (world_size() == 1) GTEST_SKIP() << "needs 2 ranks";
  Rng rng(3);
  Sequential<float> model;
  model.add(std::make_unique<Conv2d<float>>(Conv2dOptions(1, 2, 8), rng));  // 8×8 → 1×1
  model.add(std::make_unique<BatchNorm2d<float>>(2));
  model.add(std::make_unique<Flatten<float>>());
  model.add(std::make_unique<FullyConnected<float>>(FullyConnectedOptions(2, 2), rng));
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1));
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  const data::Dataset<float> train = make_data<float>(3, 1);
  data::Batcher batches(3, 3);  // parts of 1 and 2 images with 2 ranks
  Rng shuffle(1);
  try {
    dp.train_epoch(train, batches, shuffle);
    ADD_FAILURE() << "expected an error";
  } catch (const ShapeError& e) {
    EXPECT_EQ(world_rank(), 0) << e.what();
  } catch (const Error& e) {
    EXPECT_NE(world_rank(), 0);
    EXPECT_NE(std::string(e.what()).find("rank 0 failed in forward at batch 0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sgd.steps(), 0);
}

/// A layer with a parameter its backward never touches (as a branch a model skips).
class Untouched : public Layer<float> {
 public:
  Untouched() : p_("p", Shape{4}) { p_.value.fill(1.0f); }
  Shape output_shape(const Shape& input) const override { return input; }
  std::string describe() const override { return "Untouched"; }
  void collect_parameters(std::vector<NamedParameter<float>>& out, const std::string& prefix) override {
    add_parameter(out, prefix, p_);
  }

 protected:
  Tensor<float> do_forward(const Tensor<float>& input) override { return input; }
  Tensor<float> do_backward(const Tensor<float>& grad_output) override { return grad_output; }

 private:
  Parameter<float> p_;
};

// A parameter no backward reached keeps no gradient, so the optimiser leaves it alone (weight
// decay and momentum included), as in one process; the sums must not hand it a zero one.
TEST(DataParallel, ParametersWithoutGradientsAreNotStepped) {
  Sequential<float> model = small_model<float>(1);
  model.add(std::make_unique<Untouched>());
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1).momentum(0.9).weight_decay(0.5));
  DataParallel<float> dp(MPI_COMM_WORLD, model, sgd);
  const data::Dataset<float> train = make_data<float>(8, 1);
  data::Batcher batches(8, 4);
  Rng shuffle(1);
  dp.train_epoch(train, batches, shuffle);
  const auto params = model.named_parameters();
  const Parameter<float>& p = *params.back().param;
  EXPECT_FALSE(p.has_grad());
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(p.value[i], 1.0f);
}

}  // namespace

int main(int argc, char** argv) {
  convkit::distributed::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!mpi.is_root()) {  // one report: rank 0's (a failure elsewhere still fails the run)
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed) std::fprintf(stderr, "rank %d: some tests failed\n", mpi.rank());
  return any;
}
