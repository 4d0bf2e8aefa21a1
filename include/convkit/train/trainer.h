// convkit/train/trainer.h — one epoch of classifier training, evaluation, and the
// training-state checkpoint (model, optimiser, epoch, RNG) that makes resuming exact.
//
// A training step on a batch (x, y):
//   zero_grad;  logits = model(x);  L = softmax_cross_entropy(logits, y) + Σ_aux wᵢ·CE(auxᵢ, y);
//   model.backward(∂L/∂logits) (each auxiliary head adds its own gradient);  optimiser.step()
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convkit/containers/auxiliary_head.h"
#include "convkit/core/error.h"
#include "convkit/core/rng.h"
#include "convkit/data/batcher.h"
#include "convkit/data/dataset.h"
#include "convkit/io/checkpoint.h"
#include "convkit/layers/layer.h"
#include "convkit/losses/softmax_cross_entropy.h"
#include "convkit/optim/optimizer.h"
#include "convkit/train/metrics.h"

namespace convkit {

/// Called after each training batch with (images in the batch, its mean loss, correct).
using BatchCallback = std::function<void(Index images, double loss, Index correct)>;
/// Learning rate for a global step number (counted from 0), or empty for a fixed rate.
using StepSchedule = std::function<double(long long step)>;

struct EpochStats {
  double loss = 0.0;      // mean over images
  double accuracy = 0.0;  // running training accuracy
  Index images = 0;
};

namespace detail {

/// The classifier loss of a training step: softmax cross-entropy of the logits plus that of
/// every auxiliary head (AuxiliaryHead layers, GoogLeNet's) times its weight. grad_scale
/// multiplies every gradient it hands back (DataParallel weights a rank's shard by its
/// share of the global batch); 1 leaves them untouched.
template <typename T>
class ClassifierLoss {
 public:
  explicit ClassifierLoss(Layer<T>& model) : heads_(find_layers<AuxiliaryHead<T>>(model)) {}

  /// The total loss for labels y; gives each auxiliary head its output gradient.
  double forward(const Tensor<T>& logits, const std::vector<Index>& y, T grad_scale = T(1)) {
    grad_scale_ = grad_scale;
    double l = static_cast<double>(loss_.forward(logits, y));
    for (AuxiliaryHead<T>* head : heads_) {
      const Tensor<T>* out = head->output();
      if (out == nullptr) continue;
      l += head->loss_weight() * static_cast<double>(aux_loss_.forward(*out, y));
      Tensor<T> g = aux_loss_.backward();
      const T w = static_cast<T>(head->loss_weight()) * grad_scale;
      for (T& v : g) v *= w;
      head->set_output_grad(std::move(g));
    }
    return l;
  }

  /// The gradient of the main loss with respect to the logits, times grad_scale.
  Tensor<T> backward() {
    Tensor<T> g = loss_.backward();
    if (grad_scale_ != T(1))
      for (T& v : g) v *= grad_scale_;
    return g;
  }

 private:
  SoftmaxCrossEntropy<T> loss_, aux_loss_;
  std::vector<AuxiliaryHead<T>*> heads_;
  T grad_scale_ = T(1);
};

/// How many of logits' predictions equal y.
template <typename T>
Index count_correct(const Tensor<T>& logits, const std::vector<Index>& y) {
  const std::vector<Index> predicted = predict_classes(logits);
  Index correct = 0;
  for (std::size_t i = 0; i < y.size(); ++i) correct += predicted[i] == y[i];
  return correct;
}

/// The ValueError for a non-finite training loss.
[[noreturn]] inline void throw_bad_loss(double l, Index batch, long long step, double lr) {
  throw_with_message<ValueError>([&](std::ostream& os) {
    os << "training: the loss became " << l << " at batch " << batch << " of the epoch (step " << step
       << ", learning rate " << lr << ")";
  });
}

/// The sum of the losses (times images) and the confusion matrix of `model` over the
/// samples [begin, end) of `data`, in batches of batch_size; the mode is left as it was.
template <typename T>
std::pair<double, ConfusionMatrix> evaluate_range(Layer<T>& model, const data::Dataset<T>& data, Index begin,
                                                  Index end, Index batch_size) {
  CONVKIT_CHECK(batch_size >= 1, ValueError, "evaluate: expected batch_size >= 1, got " << batch_size);
  const bool was_training = model.is_training();
  model.eval();
  const NoGradGuard no_grad;  // nothing is kept for a backward pass
  SoftmaxCrossEntropy<T> loss;
  ConfusionMatrix confusion(data.num_classes);
  Tensor<T> x;
  std::vector<Index> y, indices;
  double loss_sum = 0.0;
  for (Index b = begin; b < end; b += batch_size) {
    indices.clear();
    for (Index i = b; i < std::min(end, b + batch_size); ++i) indices.push_back(i);
    data::gather(data, indices, x, y);
    const Tensor<T> logits = model.forward(x);
    loss_sum += static_cast<double>(loss.forward(logits, y)) * static_cast<double>(y.size());
    confusion.add(y, predict_classes(logits));
  }
  model.set_training(was_training);
  return {loss_sum, confusion};
}

}  // namespace detail

/// Trains `model` for one epoch over `data` in the batcher's order (shuffled from rng).
/// Auxiliary classifiers (AuxiliaryHead layers in the model, GoogLeNet's) add their weighted
/// softmax cross-entropy to the loss; the reported loss is that total.
/// @throws ValueError if the loss becomes non-finite (the message names epoch-local batch);
/// the parameters are then those of the failed step and should be discarded.
template <typename T>
EpochStats train_epoch(Layer<T>& model, Optimizer<T>& optimizer, const data::Dataset<T>& data,
                       data::Batcher& batcher, Rng& rng, const StepSchedule& schedule = {},
                       const BatchCallback& on_batch = {}) {
  model.train();
  batcher.start_epoch(rng);
  detail::ClassifierLoss<T> loss(model);
  Tensor<T> x;
  std::vector<Index> y;
  EpochStats stats;
  double loss_sum = 0.0;
  Index correct_sum = 0;
  for (Index b = 0; b < batcher.num_batches(); ++b) {
    data::gather(data, batcher.batch(b), x, y);
    if (schedule) optimizer.set_learning_rate(schedule(optimizer.steps()));
    optimizer.zero_grad();
    const Tensor<T> logits = model.forward(x);
    const double l = loss.forward(logits, y);
    if (!std::isfinite(l)) detail::throw_bad_loss(l, b, optimizer.steps() + 1, optimizer.learning_rate());
    model.backward(loss.backward());
    optimizer.step();
    const Index correct = detail::count_correct(logits, y);
    loss_sum += l * static_cast<double>(y.size());
    correct_sum += correct;
    stats.images += static_cast<Index>(y.size());
    if (on_batch) on_batch(static_cast<Index>(y.size()), l, correct);
  }
  stats.loss = stats.images ? loss_sum / static_cast<double>(stats.images) : 0.0;
  stats.accuracy = stats.images ? static_cast<double>(correct_sum) / static_cast<double>(stats.images) : 0.0;
  return stats;
}

struct EvalStats {
  double loss = 0.0;
  ConfusionMatrix confusion{1};
  double accuracy() const { return confusion.accuracy(); }
};

/// Mean loss and confusion matrix of `model` (in evaluation mode) over `data`.
/// @throws ValueError for batch_size < 1.
template <typename T>
EvalStats evaluate(Layer<T>& model, const data::Dataset<T>& data, Index batch_size = 256) {
  auto [loss_sum, confusion] = detail::evaluate_range(model, data, 0, data.size(), batch_size);
  EvalStats s;
  s.loss = data.size() ? loss_sum / static_cast<double>(data.size()) : 0.0;
  s.confusion = std::move(confusion);
  return s;
}

namespace detail {

/// The layers under `root` (root included) that have their own Rng (Dropout), with the
/// checkpoint key of each: "rng.layer.<path>" ("rng.layer" for the root itself).
template <typename T>
std::vector<std::pair<std::string, Rng*>> layer_rngs(Layer<T>& root) {
  std::vector<std::pair<std::string, Rng*>> out;
  for_each_layer(root, [&](const std::string& path, Layer<T>& layer) {
    if (Rng* r = layer.own_rng()) out.emplace_back(path.empty() ? "rng.layer" : "rng.layer." + path, r);
  });
  return out;
}

}  // namespace detail

/// Everything needed to continue training exactly: parameters ("model.*"), optimiser
/// state ("optimizer.*", learning rate, step count), epochs done, the RNG state and that of
/// every layer with its own generator ("rng.layer.<path>", Dropout's masks); `meta`
/// texts (how the data was prepared, class names) are stored as "meta.<key>" for programs
/// that later use the model.
template <typename T>
Checkpoint<T> training_state(Layer<T>& model, Optimizer<T>& optimizer, long long epoch, const Rng& rng,
                             const std::map<std::string, std::string>& meta = {}) {
  Checkpoint<T> c;
  for (const auto& [key, value] : meta) c.put_text("meta." + key, value);
  save_parameters(c, model.named_parameters(), "model.");
  for (const auto& [name, tensor] : optimizer.state()) c.put("optimizer." + name, *tensor);
  std::ostringstream lr;
  lr.precision(17);
  lr << optimizer.learning_rate();
  c.put_text("optimizer.learning_rate", lr.str());
  c.put_text("optimizer.steps", std::to_string(optimizer.steps()));
  c.put_text("epoch", std::to_string(epoch));
  c.put_text("rng", rng.state());
  for (const auto& [key, layer_rng] : detail::layer_rngs(model)) c.put_text(key, layer_rng->state());
  return c;
}

/// Writes training_state(...) to `path` (atomically, see Checkpoint::save).
template <typename T>
void save_training_state(const std::string& path, Layer<T>& model, Optimizer<T>& optimizer, long long epoch,
                         const Rng& rng, const std::map<std::string, std::string>& meta = {}) {
  training_state(model, optimizer, epoch, rng, meta).save(path);
}

/// Restores what save_training_state wrote from a checkpoint in memory (read from `path`,
/// which names it in messages); returns the number of epochs done.
/// @throws FormatError (see load_parameters) on any mismatch; nothing is changed then.
template <typename T>
long long load_training_state(const Checkpoint<T>& c, const std::string& path, Layer<T>& model,
                              Optimizer<T>& optimizer, Rng& rng) {
  auto state = optimizer.state();
  for (const auto& entry : state) {  // not a structured binding: C++17 lambdas (in CONVKIT_CHECK) cannot capture one
    const std::string key = "optimizer." + entry.first;
    const Tensor<T>* tensor = entry.second;
    CONVKIT_CHECK(c.has_tensor(key), FormatError, "checkpoint " << path << ": missing optimiser entry '" << key << "'");
    CONVKIT_CHECK(c.tensor(key).shape() == tensor->shape(), FormatError,
                  "checkpoint " << path << ": optimiser entry '" << key << "' has shape " << c.tensor(key).shape()
                                << ", expected " << tensor->shape());
  }
  long long epoch = 0, steps = 0;
  double lr = 0.0;
  try {
    epoch = std::stoll(c.text("epoch"));
    steps = std::stoll(c.text("optimizer.steps"));
    lr = std::stod(c.text("optimizer.learning_rate"));
  } catch (const std::logic_error&) {
    CONVKIT_CHECK(false, FormatError, "checkpoint " << path << ": epoch, step count or learning rate is not a number");
  }
  Rng restored;
  restored.set_state(c.text("rng"));
  const auto layer_rngs = detail::layer_rngs(model);
  std::vector<Rng> layer_restored(layer_rngs.size());
  for (std::size_t i = 0; i < layer_rngs.size(); ++i) {
    const std::string& key = layer_rngs[i].first;
    CONVKIT_CHECK(c.has_text(key), FormatError,
                  "checkpoint " << path << ": missing entry '" << key << "' (the random state of a Dropout layer)");
    layer_restored[i].set_state(c.text(key));
  }
  load_parameters(c, model.named_parameters(), "model.", "checkpoint " + path);
  for (const auto& [name, tensor] : state) *tensor = c.tensor("optimizer." + name);
  optimizer.set_steps(steps);
  optimizer.set_learning_rate(lr);
  rng = restored;
  for (std::size_t i = 0; i < layer_rngs.size(); ++i) *layer_rngs[i].second = layer_restored[i];
  return epoch;
}

/// Restores what save_training_state wrote to `path`; returns the number of epochs done.
/// @throws IoError/FormatError (see Checkpoint::load and load_parameters) on any mismatch;
/// nothing is changed then.
template <typename T>
long long load_training_state(const std::string& path, Layer<T>& model, Optimizer<T>& optimizer, Rng& rng) {
  return load_training_state(Checkpoint<T>::load(path), path, model, optimizer, rng);
}

}  // namespace convkit
