// Integration: LeNet-5 trained for one epoch on 10,000 Fashion-MNIST images reaches at least
// 75% test accuracy. Uses Debian's dataset-fashion-mnist package; skipped with a message
// when it is absent (scripts/install-deps.sh installs it).
#include <gtest/gtest.h>

#include <convkit/convkit.h>

namespace convkit {
namespace {

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

TEST(LeNet5Integration, OneEpochOnTenThousandFashionImagesReaches75Percent) {
  if (!data::has_mnist_files(kFashionDir))
    GTEST_SKIP() << "Fashion-MNIST not found in " << kFashionDir << " (apt-get install dataset-fashion-mnist)";
  // Fashion-MNIST's training-set pixel mean and std (data::idx_pixel_mean_std).
  const auto opts = data::MnistOptions().pad(2).standardize(0.2860, 0.3530);
  const auto train = data::load_mnist<float>(kFashionDir, "train", data::MnistOptions(opts).limit(10000));
  const auto test = data::load_mnist<float>(kFashionDir, "t10k", opts);
  ASSERT_EQ(train.size(), 10000);
  ASSERT_EQ(test.size(), 10000);

  Rng rng(0);
  ::testing::Test::RecordProperty("seed", 0);
  Sequential<float> model = models::lenet5<float>(rng);
  model.set_needs_input_grad(false);
  Adam<float> optimizer(model.named_parameters(), AdamOptions(2e-3));
  data::Batcher batcher(train.size(), 32);
  const EpochStats stats = train_epoch(model, optimizer, train, batcher, rng);
  const EvalStats ev = evaluate(model, test);
  std::printf("train loss %.4f, test accuracy %.2f%%\n", stats.loss, 100.0 * ev.accuracy());
  EXPECT_LT(stats.loss, 1.0);
  EXPECT_GE(ev.accuracy(), 0.75);
  EXPECT_EQ(ev.confusion.total(), 10000);
}

}  // namespace
}  // namespace convkit
