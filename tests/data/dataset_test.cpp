// load_mnist on tiny MNIST-format directories written by the test (pixel scaling, padding,
// standardisation, limit, label and count errors), and Batcher/gather.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <convkit/data/batcher.h>
#include <convkit/data/dataset.h>

#include "data/data_files.h"
#include "support/seed.h"

namespace {

using convkit::FormatError;
using convkit::Index;
using convkit::IoError;
using convkit::Rng;
using convkit::Shape;
using convkit::Tensor;
using convkit::ValueError;
using convkit::data::Batcher;
using convkit::data::Dataset;
using convkit::data::load_mnist;
using convkit::data::MnistOptions;
using namespace convkit::testing::data_files;

constexpr int kItems = 5, kSide = 28;

/// Pixel (i, y, x) of the test images; includes 0 and 255.
std::uint8_t pixel(int i, int y, int x) {
  if (y == 0 && x == 0) return 255;
  if (y == 1 && x == 0) return 0;
  return static_cast<std::uint8_t>((i * 53 + y * 7 + x * 3) % 256);
}

Bytes image_data(int items) {
  Bytes b;
  for (int i = 0; i < items; ++i)
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) b.push_back(pixel(i, y, x));
  return b;
}

const Bytes kLabels = {3, 0, 9, 7, 1};

/// Writes the four MNIST files; the train split plain, the t10k split gzipped.
void write_mnist(const TempDir& dir, const Bytes& labels = kLabels, int items = kItems) {
  const auto n = static_cast<std::uint32_t>(items);
  write_plain(dir.file("train-images-idx3-ubyte"), idx_bytes({n, kSide, kSide}, image_data(items)));
  write_plain(dir.file("train-labels-idx1-ubyte"), idx_bytes({static_cast<std::uint32_t>(labels.size())}, labels));
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes({n, kSide, kSide}, image_data(items)));
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({static_cast<std::uint32_t>(labels.size())}, labels));
}

template <typename T>
class MnistTyped : public ::testing::Test {};
TYPED_TEST_SUITE(MnistTyped, convkit::testing::Scalars);

TYPED_TEST(MnistTyped, ScalesPixelsToUnitRange) {
  TempDir dir;
  write_mnist(dir);
  EXPECT_TRUE(convkit::data::has_mnist_files(dir.str()));
  for (const char* split : {"train", "t10k"}) {
    const Dataset<TypeParam> d = load_mnist<TypeParam>(dir.str(), split);
    EXPECT_EQ(d.images.shape(), (Shape{kItems, 1, kSide, kSide})) << split;
    EXPECT_EQ(d.num_classes, 10);
    EXPECT_EQ(d.size(), kItems);
    EXPECT_EQ(d.labels, (std::vector<Index>{3, 0, 9, 7, 1}));
    for (int i = 0; i < kItems; ++i)
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x) {
          const double want = pixel(i, y, x) / 255.0;
          ASSERT_NEAR(static_cast<double>(d.images(i, 0, y, x)), want, 1e-6) << i << "," << y << "," << x;
        }
    EXPECT_EQ(d.images(0, 0, 0, 0), TypeParam(1));  // 255 -> exactly 1
    EXPECT_EQ(d.images(2, 0, 1, 0), TypeParam(0));  // 0 -> exactly 0
  }
}

TYPED_TEST(MnistTyped, PadsWithZeroBorder) {
  TempDir dir;
  write_mnist(dir);
  const Dataset<TypeParam> d = load_mnist<TypeParam>(dir.str(), "train", MnistOptions().pad(2));
  ASSERT_EQ(d.images.shape(), (Shape{kItems, 1, 32, 32}));
  for (int i = 0; i < kItems; ++i)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const bool border = y < 2 || y >= 30 || x < 2 || x >= 30;
        const double want = border ? 0.0 : pixel(i, y - 2, x - 2) / 255.0;
        ASSERT_NEAR(static_cast<double>(d.images(i, 0, y, x)), want, 1e-6) << i << "," << y << "," << x;
        if (border) {
          ASSERT_EQ(d.images(i, 0, y, x), TypeParam(0));
        }
      }
  EXPECT_EQ(d.images(0, 0, 2, 2), TypeParam(1));
}

TYPED_TEST(MnistTyped, StandardizesPadsAndLimits) {
  TempDir dir;
  write_mnist(dir);
  const double mean = 0.1307, sd = 0.3081;
  const Dataset<TypeParam> d =
      load_mnist<TypeParam>(dir.str(), "t10k", MnistOptions().pad(1).standardize(mean, sd).limit(3));
  ASSERT_EQ(d.images.shape(), (Shape{3, 1, 30, 30}));
  EXPECT_EQ(d.labels, (std::vector<Index>{3, 0, 9}));
  for (int i = 0; i < 3; ++i)
    for (int y = 0; y < 30; ++y)
      for (int x = 0; x < 30; ++x) {
        const bool border = y < 1 || y >= 29 || x < 1 || x >= 29;
        const double raw = border ? 0.0 : pixel(i, y - 1, x - 1) / 255.0;
        ASSERT_NEAR(static_cast<double>(d.images(i, 0, y, x)), (raw - mean) / sd, 1e-5) << i << "," << y << "," << x;
      }
  // a limit above the count keeps everything; 0 keeps nothing
  EXPECT_EQ(load_mnist<TypeParam>(dir.str(), "train", MnistOptions().limit(100)).size(), kItems);
  const Dataset<TypeParam> none = load_mnist<TypeParam>(dir.str(), "train", MnistOptions().limit(0));
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.images.shape(), (Shape{0, 1, kSide, kSide}));
}

TEST(Mnist, LabelOutOfRangeNamesLabelItemAndOffset) {
  TempDir dir;
  write_mnist(dir, Bytes{3, 0, 9, 10, 1});
  const std::string msg = message_of<FormatError>([&] { load_mnist<float>(dir.str(), "train"); });
  EXPECT_TRUE(contains(msg, dir.file("train-labels-idx1-ubyte"))) << msg;
  EXPECT_TRUE(contains(msg, "label 10 of item 3 at byte offset 11 is out of range [0, 10)")) << msg;
  // the same in the gzipped split; offsets count decompressed bytes
  const std::string gz = message_of<FormatError>([&] { load_mnist<float>(dir.str(), "t10k"); });
  EXPECT_TRUE(contains(gz, "t10k-labels-idx1-ubyte.gz")) << gz;
  EXPECT_TRUE(contains(gz, "label 10 of item 3 at byte offset 11")) << gz;
  // a bad label beyond the limit is never read
  EXPECT_EQ(load_mnist<float>(dir.str(), "train", MnistOptions().limit(3)).size(), 3);
  write_mnist(dir, Bytes{255, 0, 0, 0, 0});
  EXPECT_TRUE(contains(message_of<FormatError>([&] { load_mnist<float>(dir.str(), "train"); }),
                       "label 255 of item 0 at byte offset 8"));
}

TEST(Mnist, CountMismatch) {
  TempDir dir;
  write_mnist(dir, Bytes{1, 2, 3, 4});
  const std::string msg = message_of<FormatError>([&] { load_mnist<float>(dir.str(), "train"); });
  EXPECT_TRUE(contains(msg, dir.file("train-images-idx3-ubyte"))) << msg;
  EXPECT_TRUE(contains(msg, dir.file("train-labels-idx1-ubyte"))) << msg;
  EXPECT_TRUE(contains(msg, "expected as many labels as images, got 4 labels for 5 images")) << msg;
}

TEST(Mnist, WrongRanks) {
  TempDir dir;
  write_mnist(dir);
  // images file with rank 2, labels file with rank 2
  write_plain(dir.file("train-images-idx3-ubyte"), idx_bytes({5, 784}, image_data(kItems)));
  std::string msg = message_of<FormatError>([&] { load_mnist<float>(dir.str(), "train"); });
  EXPECT_TRUE(contains(msg, "expected 3 dimensions (N, H, W), got 2")) << msg;
  write_mnist(dir);
  write_plain(dir.file("train-labels-idx1-ubyte"), idx_bytes({5, 1}, kLabels));
  msg = message_of<FormatError>([&] { load_mnist<float>(dir.str(), "train"); });
  EXPECT_TRUE(contains(msg, "expected 1 dimension (N), got 2")) << msg;
}

TEST(Mnist, MissingFilesAndBadOptions) {
  TempDir dir;
  EXPECT_FALSE(convkit::data::has_mnist_files(dir.str()));
  std::string msg = message_of<IoError>([&] { load_mnist<float>(dir.str(), "train"); });
  EXPECT_TRUE(contains(msg, dir.file("train-images-idx3-ubyte") + "(.gz), found neither")) << msg;
  write_mnist(dir);
  std::filesystem::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  EXPECT_FALSE(convkit::data::has_mnist_files(dir.str()));
  msg = message_of<IoError>([&] { load_mnist<float>(dir.str(), "t10k"); });
  EXPECT_TRUE(contains(msg, "t10k-labels-idx1-ubyte(.gz), found neither")) << msg;
  msg = message_of<ValueError>([&] { load_mnist<float>(dir.str(), "test"); });
  EXPECT_TRUE(contains(msg, "expected split \"train\" or \"t10k\", got \"test\"")) << msg;
  msg = message_of<ValueError>([&] { load_mnist<float>(dir.str(), "train", MnistOptions().pad(-1)); });
  EXPECT_TRUE(contains(msg, "got pad -1")) << msg;
  msg = message_of<ValueError>([&] { load_mnist<float>(dir.str(), "train", MnistOptions().standardize(0.5, 0)); });
  EXPECT_TRUE(contains(msg, "std 0")) << msg;
}

TEST(Mnist, PixelMeanAndStd) {
  TempDir dir;
  write_mnist(dir);
  double s = 0.0, s2 = 0.0;
  const Bytes px = image_data(kItems);
  for (std::uint8_t v : px) s += v / 255.0;
  const double mean = s / static_cast<double>(px.size());
  for (std::uint8_t v : px) s2 += (v / 255.0 - mean) * (v / 255.0 - mean);
  const double sd = std::sqrt(s2 / static_cast<double>(px.size()));
  for (const char* name : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"}) {
    const auto [m, d] = convkit::data::idx_pixel_mean_std(dir.file(name));
    EXPECT_NEAR(m, mean, 1e-12) << name;
    EXPECT_NEAR(d, sd, 1e-9) << name;
  }
  // standardising with them gives pixels of mean 0 and std 1
  const auto [m, d] = convkit::data::idx_pixel_mean_std(dir.file("train-images-idx3-ubyte"));
  const Dataset<double> ds = load_mnist<double>(dir.str(), "train", MnistOptions().standardize(m, d));
  double t = 0.0, t2 = 0.0;
  for (double v : ds.images) t += v, t2 += v * v;
  const double n = static_cast<double>(ds.images.numel());
  EXPECT_NEAR(t / n, 0.0, 1e-9);
  EXPECT_NEAR(t2 / n, 1.0, 1e-9);
  write_plain(dir.file("none"), idx_bytes({0, 28, 28}, {}));
  EXPECT_TRUE(contains(message_of<FormatError>([&] { convkit::data::idx_pixel_mean_std(dir.file("none")); }),
                       dir.file("none") + ": expected pixels, got none"));
  EXPECT_THROW(convkit::data::idx_pixel_mean_std(dir.file("absent")), IoError);
}

// ---------------------------------------------------------------------------------------------
// Batcher

std::vector<std::vector<Index>> epoch(Batcher& b, Rng& rng) {
  b.start_epoch(rng);
  std::vector<std::vector<Index>> out;
  for (Index i = 0; i < b.num_batches(); ++i) out.push_back(b.batch(i));
  return out;
}

std::vector<Index> flat(const std::vector<std::vector<Index>>& batches) {
  std::vector<Index> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(Batcher, EveryIndexOncePerEpoch) {
  Rng rng = convkit::testing::seeded_rng(201);
  Batcher b(23, 5);
  EXPECT_EQ(b.num_batches(), 5);
  std::vector<Index> previous;
  for (int e = 0; e < 3; ++e) {
    const auto batches = epoch(b, rng);
    ASSERT_EQ(batches.size(), 5u);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(batches[i].size(), 5u);
    EXPECT_EQ(batches[4].size(), 3u);  // the partial last batch
    std::vector<Index> all = flat(batches);
    std::vector<Index> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    std::vector<Index> expected(23);
    for (Index i = 0; i < 23; ++i) expected[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(sorted, expected) << "epoch " << e;
    EXPECT_NE(all, expected) << "epoch " << e << " was not shuffled";
    EXPECT_NE(all, previous) << "epoch " << e << " repeated the last order";
    previous = all;
  }
}

TEST(Batcher, SameSeedSameOrderDifferentSeedDifferentOrder) {
  Batcher a(50, 8), b(50, 8), c(50, 8);
  Rng ra(7), rb(7), rc(8);
  for (int e = 0; e < 2; ++e) {
    const auto ea = flat(epoch(a, ra)), eb = flat(epoch(b, rb)), ec = flat(epoch(c, rc));
    EXPECT_EQ(ea, eb);
    EXPECT_NE(ea, ec);
  }
}

TEST(Batcher, NoShuffleIsIdentityAndLeavesRngAlone) {
  Batcher b(10, 4, /*shuffle=*/false);
  Rng rng(3), untouched(3);
  const auto batches = epoch(b, rng);
  EXPECT_EQ(batches, (std::vector<std::vector<Index>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_EQ(rng.next_u64(), untouched.next_u64());
}

TEST(Batcher, DropLast) {
  Batcher b(10, 4, /*shuffle=*/false, /*drop_last=*/true);
  Rng rng(1);
  EXPECT_EQ(epoch(b, rng), (std::vector<std::vector<Index>>{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  Batcher exact(12, 4, true, true), keep(12, 4, true, false);
  EXPECT_EQ(exact.num_batches(), 3);
  EXPECT_EQ(keep.num_batches(), 3);
  Batcher small(3, 4, true, true);
  EXPECT_EQ(small.num_batches(), 0);
  Batcher small_keep(3, 4, true, false);
  EXPECT_EQ(small_keep.num_batches(), 1);
  Batcher empty(0, 4);
  EXPECT_EQ(empty.num_batches(), 0);
  // with shuffling, drop_last drops the partial batch of the permutation
  Batcher shuffled(10, 4, true, true);
  const auto batches = epoch(shuffled, rng);
  ASSERT_EQ(batches.size(), 2u);
  std::set<Index> seen;
  for (const auto& bt : batches) seen.insert(bt.begin(), bt.end());
  EXPECT_EQ(seen.size(), 8u);
}

TEST(Batcher, Errors) {
  EXPECT_TRUE(contains(message_of<ValueError>([] { Batcher(10, 0); }),
                       "expected size >= 0 and batch_size >= 1, got 10 and 0"));
  EXPECT_TRUE(contains(message_of<ValueError>([] { Batcher(-1, 2); }), "got -1 and 2"));
  Batcher b(10, 4);
  EXPECT_TRUE(contains(message_of<ValueError>([&] { b.batch(3); }), "batch 3 is out of range for 3 batches"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { b.batch(-1); }), "batch -1 is out of range"));
}

TEST(Batcher, GatherCopiesImagesAndLabels) {
  Dataset<float> d;
  d.num_classes = 4;
  d.images = Tensor<float>(Shape{6, 2, 3, 2});
  for (Index i = 0; i < d.images.numel(); ++i) d.images[i] = static_cast<float>(i);
  d.labels = {0, 1, 2, 3, 0, 1};
  Tensor<float> images;
  std::vector<Index> labels;
  convkit::data::gather(d, {4, 1, 5}, images, labels);
  ASSERT_EQ(images.shape(), (Shape{3, 2, 3, 2}));
  EXPECT_EQ(labels, (std::vector<Index>{0, 1, 1}));
  const Index per = 12;
  const Index src[] = {4, 1, 5};
  for (Index i = 0; i < 3; ++i)
    for (Index k = 0; k < per; ++k) EXPECT_EQ(images[i * per + k], static_cast<float>(src[i] * per + k));
  // reuses a buffer of the right shape, reallocates one of the wrong shape
  const float* buffer = images.data();
  convkit::data::gather(d, {0, 2, 3}, images, labels);
  EXPECT_EQ(images.data(), buffer);
  EXPECT_EQ(images(2, 1, 2, 1), static_cast<float>(3 * per + 11));
  EXPECT_EQ(labels, (std::vector<Index>{0, 2, 3}));
  convkit::data::gather(d, {5}, images, labels);
  EXPECT_EQ(images.shape(), (Shape{1, 2, 3, 2}));
  EXPECT_EQ(images[0], static_cast<float>(5 * per));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { convkit::data::gather(d, {2, 6}, images, labels); }),
                       "sample index 6 is out of range for a dataset of 6"));
}

TEST(Batcher, GatherOverAShuffledEpochSeesEverySampleOnce) {
  Dataset<double> d;
  d.num_classes = 3;
  d.images = Tensor<double>(Shape{7, 1, 1, 1});
  for (Index i = 0; i < 7; ++i) d.images[i] = 100.0 + static_cast<double>(i);
  d.labels = {0, 1, 2, 0, 1, 2, 0};
  Batcher b(7, 3);
  Rng rng(11);
  b.start_epoch(rng);
  std::multiset<double> seen;
  Tensor<double> x;
  std::vector<Index> y;
  for (Index k = 0; k < b.num_batches(); ++k) {
    convkit::data::gather(d, b.batch(k), x, y);
    for (Index i = 0; i < x.numel(); ++i) {
      seen.insert(x[i]);
      EXPECT_EQ(y[static_cast<std::size_t>(i)], d.labels[static_cast<std::size_t>(x[i] - 100.0)]);
    }
  }
  EXPECT_EQ(seen, (std::multiset<double>{100, 101, 102, 103, 104, 105, 106}));
}

}  // namespace
