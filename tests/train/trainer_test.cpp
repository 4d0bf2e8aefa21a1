// Training helpers: predict_classes, ConfusionMatrix, ProgressBar, train_epoch on a small
// separable problem, evaluate(), exact resume through save/load_training_state (SGD with
// momentum and Adam), strict loading, and the non-finite loss error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/containers/sequential.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/max_pool2d.h>
#include <convkit/layers/relu.h>
#include <convkit/optim/adam.h>
#include <convkit/optim/sgd.h>
#include <convkit/train/metrics.h>
#include <convkit/train/progress.h>
#include <convkit/train/trainer.h>

#include "data/data_files.h"
#include "support/seed.h"
#include "train/train_support.h"

namespace {

using convkit::Adam;
using convkit::AdamOptions;
using convkit::ConfusionMatrix;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::FormatError;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::Index;
using convkit::IoError;
using convkit::Optimizer;
using convkit::Rng;
using convkit::Sequential;
using convkit::SGD;
using convkit::SgdOptions;
using convkit::Shape;
using convkit::Tensor;
using convkit::ValueError;
using convkit::data::Batcher;
using convkit::data::Dataset;
using namespace convkit::testing::data_files;
using namespace convkit::testing::train_support;

// ---------------------------------------------------------------------------------------------
// Metrics

TEST(Metrics, PredictClassesIsRowArgmaxFirstOnTies) {
  Tensor<float> logits(Shape{4, 3});
  const float v[] = {0.1f, 0.7f, 0.2f,  //
                     5.0f, -1.f, 4.9f,  //
                     2.0f, 3.0f, 3.0f,  //
                     -3.f, -2.f, -1.f};
  for (Index i = 0; i < 12; ++i) logits[i] = v[i];
  EXPECT_EQ(convkit::predict_classes(logits), (std::vector<Index>{1, 0, 1, 2}));
  Tensor<double> one(Shape{2, 1});
  EXPECT_EQ(convkit::predict_classes(one), (std::vector<Index>{0, 0}));
  const std::string msg = message_of<convkit::ShapeError>([] { convkit::predict_classes(Tensor<float>(Shape{2, 3, 1, 1})); });
  EXPECT_TRUE(contains(msg, "expected logits (N, C) with C >= 1, got (2, 3, 1, 1)")) << msg;
}

TEST(Metrics, ConfusionMatrixCountsAndAccuracy) {
  ConfusionMatrix m(3);
  EXPECT_EQ(m.accuracy(), 0.0);
  EXPECT_EQ(m.total(), 0);
  m.add({0, 1, 2, 2, 1}, {0, 2, 2, 2, 1});
  m.add({0}, {1});
  EXPECT_EQ(m.classes(), 3);
  EXPECT_EQ(m.total(), 6);
  EXPECT_EQ(m.correct(), 4);
  EXPECT_DOUBLE_EQ(m.accuracy(), 4.0 / 6.0);
  const Index expected[3][3] = {{1, 1, 0}, {0, 1, 1}, {0, 0, 2}};
  for (Index t = 0; t < 3; ++t)
    for (Index p = 0; p < 3; ++p) EXPECT_EQ(m.count(t, p), expected[t][p]) << t << "," << p;

  EXPECT_TRUE(contains(message_of<ValueError>([&] { m.add({0, 1}, {0}); }),
                       "expected as many predictions as labels, got 1 and 2"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { m.add({3}, {0}); }), "expected classes in [0, 3), got label 3 and prediction 0"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { m.add({0}, {-1}); }), "got label 0 and prediction -1"));
  EXPECT_EQ(m.total(), 6);  // failed adds count nothing
  EXPECT_TRUE(contains(message_of<ValueError>([] { ConfusionMatrix(0); }), "expected classes >= 1, got 0"));
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  std::string l;
  while (std::getline(is, l)) out.push_back(l);
  return out;
}

std::vector<std::string> fields_of(const std::string& l) {
  std::vector<std::string> out;
  std::istringstream is(l);
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

TEST(Metrics, ConfusionMatrixToString) {
  ConfusionMatrix m(3);
  m.add({0, 1, 2, 2, 1, 0}, {0, 2, 2, 2, 1, 1});
  const std::vector<std::string> lines = lines_of(m.to_string());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(fields_of(lines[0]), (std::vector<std::string>{"true\\pred", "0", "1", "2"}));
  EXPECT_EQ(fields_of(lines[1]), (std::vector<std::string>{"0", "1", "1", "0"}));
  EXPECT_EQ(fields_of(lines[2]), (std::vector<std::string>{"1", "0", "1", "1"}));
  EXPECT_EQ(fields_of(lines[3]), (std::vector<std::string>{"2", "0", "0", "2"}));
  // a table: every line equally long, each count right-aligned under its column's header
  for (const std::string& l : lines) EXPECT_EQ(l.size(), lines[0].size()) << "\n" << m.to_string();
  for (std::size_t col = 0; col < 3; ++col) {
    const std::size_t end = lines[0].size() - 6 * (2 - col) - 1;  // last character of the column
    EXPECT_EQ(lines[0][end], static_cast<char>('0' + col)) << "\n" << m.to_string();
  }

  const std::vector<std::string> named = lines_of(m.to_string({"cat", "dog", "hippopotamus"}));
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(fields_of(named[1]), (std::vector<std::string>{"cat", "1", "1", "0"}));
  EXPECT_EQ(fields_of(named[3]), (std::vector<std::string>{"hippopotamus", "0", "0", "2"}));
  for (const std::string& l : named) EXPECT_EQ(l.size(), named[0].size()) << "\n" << m.to_string({"cat", "dog", "hippopotamus"});
}

TEST(Progress, NonTerminalWritesNothingAndAverages) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(convkit::is_terminal(f));
  convkit::ProgressBar bar("epoch 1/1", 3, f);
  EXPECT_EQ(bar.mean_loss(), 0.0);
  EXPECT_EQ(bar.accuracy(), 0.0);
  bar.update(10, 2.0, 5);
  bar.update(10, 1.0, 7);
  bar.update(5, 4.0, 5);
  EXPECT_EQ(bar.images(), 25);
  EXPECT_DOUBLE_EQ(bar.mean_loss(), (20.0 + 10.0 + 20.0) / 25.0);  // weighted by images
  EXPECT_DOUBLE_EQ(bar.accuracy(), 17.0 / 25.0);
  const double secs = bar.finish();
  EXPECT_GE(secs, 0.0);
  EXPECT_LE(secs, bar.seconds());
  std::fflush(f);
  EXPECT_EQ(std::ftell(f), 0L);  // no redraws into a file
  std::fclose(f);
}


TEST(Trainer, TrainEpochLearnsASeparableProblem) {
  const Dataset<float> train = make_data<float>(48, 501);
  const Dataset<float> test = make_data<float>(32, 502);
  Sequential<float> model = small_model<float>(503);
  SGD<float> opt(model.named_parameters(), SgdOptions(0.05).momentum(0.9));
  Batcher batcher(train.size(), 8);
  Rng rng = convkit::testing::seeded_rng(504);

  const convkit::EvalStats before = convkit::evaluate(model, test);
  Index batches_seen = 0, images_seen = 0;
  convkit::EpochStats first, last;
  for (int e = 0; e < 6; ++e) {
    const convkit::EpochStats s = convkit::train_epoch<float>(model, opt, train, batcher, rng, {},
                                                              [&](Index n, double l, Index c) {
                                                                ++batches_seen;
                                                                images_seen += n;
                                                                EXPECT_TRUE(std::isfinite(l));
                                                                EXPECT_LE(c, n);
                                                              });
    EXPECT_EQ(s.images, 48);
    if (e == 0) first = s;
    last = s;
  }
  EXPECT_EQ(batches_seen, 6 * 6);
  EXPECT_EQ(images_seen, 6 * 48);
  EXPECT_EQ(opt.steps(), 36);
  EXPECT_LT(last.loss, first.loss);
  EXPECT_GE(last.accuracy, 0.95);
  const convkit::EvalStats after = convkit::evaluate(model, test);
  EXPECT_LT(after.loss, 0.5 * before.loss);
  EXPECT_GE(after.accuracy(), 0.95);
  EXPECT_EQ(after.confusion.total(), 32);
  EXPECT_EQ(after.confusion.classes(), 2);
}

TEST(Trainer, TrainEpochFollowsTheSchedule) {
  const Dataset<double> train = make_data<double>(20, 505);
  Sequential<double> model = small_model<double>(506);
  SGD<double> opt(model.named_parameters(), SgdOptions(1.0));
  Batcher batcher(train.size(), 8);  // 3 batches: 8, 8, 4
  Rng rng(507);
  std::vector<long long> asked;
  const convkit::StepSchedule schedule = [&](long long step) {
    asked.push_back(step);
    return 0.01 / static_cast<double>(step + 1);
  };
  std::vector<Index> sizes;
  convkit::train_epoch<double>(model, opt, train, batcher, rng, schedule,
                               [&](Index n, double, Index) { sizes.push_back(n); });
  EXPECT_EQ(asked, (std::vector<long long>{0, 1, 2}));
  EXPECT_EQ(sizes, (std::vector<Index>{8, 8, 4}));
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.01 / 3);
}

TEST(Trainer, EvaluateMatchesAManualPassAndKeepsTheMode) {
  const Dataset<double> data = make_data<double>(10, 508);
  Sequential<double> model = small_model<double>(509, 2, /*dropout=*/true);

  model.train();
  const convkit::EvalStats a = convkit::evaluate(model, data, 4);
  EXPECT_TRUE(model.is_training());
  for (Index i = 0; i < model.size(); ++i) EXPECT_TRUE(model[i].is_training());
  model.eval();
  const convkit::EvalStats b = convkit::evaluate(model, data, 3);
  EXPECT_FALSE(model.is_training());
  for (Index i = 0; i < model.size(); ++i) EXPECT_FALSE(model[i].is_training());

  // Dropout is off while evaluating, so batch size and the mode before do not matter.
  EXPECT_NEAR(a.loss, b.loss, 1e-12);
  // The loss is the mean cross entropy over all samples, computed here in one batch.
  model.eval();
  const Tensor<double> logits = model.forward(data.images);
  double total = 0.0;
  for (Index i = 0; i < data.size(); ++i) {
    const double l0 = logits(i, 0), l1 = logits(i, 1);
    const double m = std::max(l0, l1);
    const double lse = m + std::log(std::exp(l0 - m) + std::exp(l1 - m));
    total += lse - logits(i, data.labels[static_cast<std::size_t>(i)]);
  }
  EXPECT_NEAR(a.loss, total / static_cast<double>(data.size()), 1e-12);
  const std::vector<Index> predicted = convkit::predict_classes(logits);
  Index correct = 0;
  for (Index i = 0; i < data.size(); ++i)
    correct += predicted[static_cast<std::size_t>(i)] == data.labels[static_cast<std::size_t>(i)];
  EXPECT_EQ(a.confusion.correct(), correct);
  EXPECT_EQ(a.confusion.total(), 10);
  EXPECT_DOUBLE_EQ(a.accuracy(), static_cast<double>(correct) / 10.0);
}

// ---------------------------------------------------------------------------------------------
// Exact resume

enum class Opt { kSgdMomentum, kAdam };

template <typename T>
std::unique_ptr<Optimizer<T>> make_optimizer(Opt kind, Sequential<T>& model, double lr) {
  if (kind == Opt::kSgdMomentum)
    return std::make_unique<SGD<T>>(model.named_parameters(), SgdOptions(lr).momentum(0.9).nesterov(true).weight_decay(1e-3));
  return std::make_unique<Adam<T>>(model.named_parameters(), AdamOptions(lr).weight_decay(1e-3));
}

template <typename T>
void check_resume(Opt kind) {
  TempDir dir;
  const Dataset<T> train = make_data<T>(30, 510);
  const convkit::StepSchedule schedule = [](long long step) { return 0.02 * std::pow(0.97, static_cast<double>(step)); };

  // Two epochs straight.
  Sequential<T> straight = small_model<T>(511);
  auto opt_a = make_optimizer<T>(kind, straight, 0.02);
  Rng rng_a(512);
  Batcher batcher_a(train.size(), 7);
  convkit::train_epoch<T>(straight, *opt_a, train, batcher_a, rng_a, schedule);
  convkit::train_epoch<T>(straight, *opt_a, train, batcher_a, rng_a, schedule);

  // One epoch, save, then a fresh model, optimiser and Rng that load it and train one more.
  const std::string path = dir.file("state.ckpt");
  {
    Sequential<T> first = small_model<T>(511);
    auto opt_b = make_optimizer<T>(kind, first, 0.02);
    Rng rng_b(512);
    Batcher batcher_b(train.size(), 7);
    convkit::train_epoch<T>(first, *opt_b, train, batcher_b, rng_b, schedule);
    convkit::save_training_state(path, first, *opt_b, 1, rng_b);
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  Sequential<T> resumed = small_model<T>(999);  // other initial weights, overwritten by the load
  auto opt_c = make_optimizer<T>(kind, resumed, 0.5);
  Rng rng_c(12345);
  EXPECT_FALSE(same_parameters(resumed, straight));
  EXPECT_EQ(convkit::load_training_state(path, resumed, *opt_c, rng_c), 1);
  EXPECT_EQ(opt_c->steps(), 5);  // ⌈30 / 7⌉ batches in the first epoch
  EXPECT_EQ(opt_c->learning_rate(), 0.02 * std::pow(0.97, 4.0));
  Batcher batcher_c(train.size(), 7);
  convkit::train_epoch<T>(resumed, *opt_c, train, batcher_c, rng_c, schedule);

  EXPECT_TRUE(same_parameters(resumed, straight));
  EXPECT_EQ(opt_c->steps(), opt_a->steps());
  const auto sa = opt_a->state(), sc = opt_c->state();
  ASSERT_EQ(sa.size(), sc.size());
  ASSERT_FALSE(sa.empty());
  for (std::size_t k = 0; k < sa.size(); ++k) {
    EXPECT_EQ(sa[k].first, sc[k].first);
    for (Index i = 0; i < sa[k].second->numel(); ++i)
      ASSERT_EQ(std::memcmp(&(*sa[k].second)[i], &(*sc[k].second)[i], sizeof(T)), 0) << sa[k].first << "[" << i << "]";
  }
  EXPECT_EQ(rng_c.state(), rng_a.state());

  // The checkpoint holds what the header says.
  const convkit::Checkpoint<T> c = convkit::Checkpoint<T>::load(path);
  EXPECT_TRUE(c.has_tensor("model.0.weight"));
  EXPECT_TRUE(c.has_tensor("model.4.bias"));
  EXPECT_TRUE(c.has_tensor(kind == Opt::kAdam ? "optimizer.0.weight.exp_avg_sq" : "optimizer.0.weight.momentum"));
  EXPECT_EQ(c.text("epoch"), "1");
  EXPECT_EQ(c.text("optimizer.steps"), "5");
}

TEST(Trainer, ResumeIsExactSgdMomentumFloat) { check_resume<float>(Opt::kSgdMomentum); }
TEST(Trainer, ResumeIsExactAdamFloat) { check_resume<float>(Opt::kAdam); }
TEST(Trainer, ResumeIsExactSgdMomentumDouble) { check_resume<double>(Opt::kSgdMomentum); }
TEST(Trainer, ResumeIsExactAdamDouble) { check_resume<double>(Opt::kAdam); }

TEST(Trainer, LoadTrainingStateWithWrongShapeChangesNothing) {
  TempDir dir;
  const std::string path = dir.file("three-classes.ckpt");
  {
    Sequential<float> other = small_model<float>(520, /*classes=*/3);
    SGD<float> opt(other.named_parameters(), SgdOptions(0.3));
    opt.step();
    convkit::save_training_state(path, other, opt, 4, Rng(1));
  }
  Sequential<float> model = small_model<float>(521);
  Sequential<float> copy = small_model<float>(521);
  SGD<float> opt(model.named_parameters(), SgdOptions(0.1));
  Rng rng(77), rng_copy(77);
  const std::string msg = message_of<FormatError>([&] { convkit::load_training_state(path, model, opt, rng); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "entry 'model.4.weight' has shape (3, 36), expected (2, 36)")) << msg;
  EXPECT_TRUE(same_parameters(model, copy));
  EXPECT_EQ(opt.steps(), 0);
  EXPECT_EQ(opt.learning_rate(), 0.1);
  EXPECT_EQ(rng.state(), rng_copy.state());

  // With Adam the optimiser's state is checked too, and named.
  const std::string adam_path = dir.file("adam-three.ckpt");
  {
    Sequential<float> other = small_model<float>(522, 3);
    Adam<float> adam(other.named_parameters());
    convkit::save_training_state(adam_path, other, adam, 2, Rng(1));
  }
  Adam<float> adam(model.named_parameters(), AdamOptions(0.004));
  const std::string amsg = message_of<FormatError>([&] { convkit::load_training_state(adam_path, model, adam, rng); });
  EXPECT_TRUE(contains(amsg, "optimiser entry 'optimizer.4.weight.exp_avg' has shape (3, 36), expected (2, 36)")) << amsg;
  EXPECT_TRUE(same_parameters(model, copy));
  EXPECT_EQ(adam.learning_rate(), 0.004);
  for (const auto& [name, t] : adam.state())
    for (float v : *t) ASSERT_EQ(v, 0.0f) << name;

  // An SGD checkpoint lacks the momentum an SGD-with-momentum optimiser needs.
  const std::string plain = dir.file("plain.ckpt");
  {
    Sequential<float> same = small_model<float>(523);
    SGD<float> sgd(same.named_parameters(), SgdOptions(0.1));
    convkit::save_training_state(plain, same, sgd, 1, Rng(1));
  }
  SGD<float> momentum(model.named_parameters(), SgdOptions(0.1).momentum(0.9));
  const std::string mmsg = message_of<FormatError>([&] { convkit::load_training_state(plain, model, momentum, rng); });
  EXPECT_TRUE(contains(mmsg, "missing optimiser entry 'optimizer.0.weight.momentum'")) << mmsg;
  EXPECT_TRUE(same_parameters(model, copy));

  const std::string missing = dir.file("absent.ckpt");
  EXPECT_TRUE(contains(message_of<IoError>([&] { convkit::load_training_state(missing, model, opt, rng); }), missing));
}

TEST(Trainer, MetaTextsAreSavedBesideTheStateAndIgnoredOnResume) {
  TempDir dir;
  const std::string path = dir.file("meta.ckpt");
  Sequential<float> model = small_model<float>(540);
  SGD<float> opt(model.named_parameters(), SgdOptions(0.1));
  convkit::save_training_state(path, model, opt, 3, Rng(5), {{"dataset", "Fashion-MNIST"}, {"mean", "0.286"}});
  const auto c = convkit::Checkpoint<float>::load(path);
  EXPECT_EQ(c.text("meta.dataset"), "Fashion-MNIST");
  EXPECT_EQ(c.text("meta.mean"), "0.286");
  Sequential<float> other = small_model<float>(541);
  SGD<float> other_opt(other.named_parameters(), SgdOptions(0.1));
  Rng rng(0);
  EXPECT_EQ(convkit::load_training_state(path, other, other_opt, rng), 3);
  EXPECT_TRUE(same_parameters(model, other));
}

TEST(Trainer, NonFiniteLossFromANanParameter) {
  const Dataset<float> train = make_data<float>(16, 530);
  Sequential<float> model = small_model<float>(531);
  SGD<float> opt(model.named_parameters(), SgdOptions(0.1));
  model.parameters()[2]->value[5] = std::numeric_limits<float>::quiet_NaN();
  Batcher batcher(train.size(), 8);
  Rng rng(532);
  const std::string msg = message_of<ValueError>([&] { convkit::train_epoch<float>(model, opt, train, batcher, rng); });
  EXPECT_TRUE(contains(msg, "the loss became")) << msg;
  EXPECT_TRUE(contains(msg, "nan")) << msg;
  EXPECT_TRUE(contains(msg, "at batch 0 of the epoch (step 1, learning rate 0.1)")) << msg;
  EXPECT_EQ(opt.steps(), 0);  // the failed step is not taken
}

TEST(Trainer, NonFiniteLossFromAHugeLearningRate) {
  const Dataset<float> train = make_data<float>(16, 533);
  Sequential<float> model = small_model<float>(534);
  SGD<float> opt(model.named_parameters(), SgdOptions(1e30));
  Batcher batcher(train.size(), 4);
  Rng rng(535);
  std::string msg;
  for (int e = 0; e < 5 && msg.empty(); ++e) {
    try {
      convkit::train_epoch<float>(model, opt, train, batcher, rng);
    } catch (const ValueError& err) {
      msg = err.what();
    }
  }
  ASSERT_FALSE(msg.empty()) << "training with learning rate 1e30 never failed";
  EXPECT_TRUE(contains(msg, "the loss became")) << msg;
  EXPECT_TRUE(msg.find("nan") != std::string::npos || msg.find("inf") != std::string::npos) << msg;
  EXPECT_TRUE(contains(msg, "learning rate 1e+30")) << msg;
}

}  // namespace
