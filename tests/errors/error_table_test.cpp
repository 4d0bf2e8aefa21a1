// The error table: one row per bad input across the whole library (layers, containers, losses,
// optimisers, schedules, data files, checkpoints, models). Each row says which exception type
// must come out and which key phrases its message must hold: what was expected, what was got,
// and who complained (DESIGN.md §7). A row fails if nothing is thrown, if the type is wrong, or
// if std::bad_alloc or any other non-convkit exception escapes.
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <ostream>
#include <set>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <convkit/containers/auxiliary_head.h>
#include <convkit/containers/concat.h>
#include <convkit/containers/residual.h>
#include <convkit/containers/sequential.h>
#include <convkit/core/error.h>
#include <convkit/core/rng.h>
#include <convkit/core/shape.h>
#include <convkit/core/tensor.h>
#include <convkit/data/batcher.h>
#include <convkit/data/dataset.h>
#include <convkit/data/idx.h>
#include <convkit/init/initializers.h>
#include <convkit/io/checkpoint.h>
#include <convkit/layers/adaptive_avg_pool2d.h>
#include <convkit/layers/avg_pool2d.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/global_avg_pool2d.h>
#include <convkit/layers/lrn.h>
#include <convkit/layers/max_pool2d.h>
#include <convkit/layers/relu.h>
#include <convkit/losses/euclidean.h>
#include <convkit/losses/sigmoid_cross_entropy.h>
#include <convkit/losses/softmax_cross_entropy.h>
#include <convkit/models/alexnet.h>
#include <convkit/models/lenet5.h>
#include <convkit/models/model_options.h>
#include <convkit/models/resnet.h>
#include <convkit/models/zoo.h>
#include <convkit/optim/adam.h>
#include <convkit/optim/lr_schedule.h>
#include <convkit/optim/sgd.h>
#include <convkit/train/metrics.h>
#include <convkit/train/trainer.h>

#include "data/data_files.h"
#include "support/expect.h"

namespace {

using namespace convkit;  // NOLINT: the table names many library types
using convkit::testing::data_files::Bytes;
using convkit::testing::data_files::idx_bytes;
using convkit::testing::data_files::read_plain;
using convkit::testing::data_files::TempDir;
using convkit::testing::data_files::write_gz;
using convkit::testing::data_files::write_plain;
using F = float;

// ---------------------------------------------------------------------------------------------
// The table's row type.

/// The convkit exception a row expects.
enum class Kind { ShapeError, ValueError, StateError, IoError, FormatError, Error /* the base class itself */ };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::ShapeError: return "ShapeError";
    case Kind::ValueError: return "ValueError";
    case Kind::StateError: return "StateError";
    case Kind::IoError: return "IoError";
    case Kind::FormatError: return "FormatError";
    case Kind::Error: return "Error (the base class itself)";
  }
  return "?";
}

/// The most derived convkit exception type of e, by name ("Error" for the base itself).
std::string type_name_of(const convkit::Error& e) {
  if (dynamic_cast<const convkit::ShapeError*>(&e) != nullptr) return "ShapeError";
  if (dynamic_cast<const convkit::ValueError*>(&e) != nullptr) return "ValueError";
  if (dynamic_cast<const convkit::StateError*>(&e) != nullptr) return "StateError";
  if (dynamic_cast<const convkit::IoError*>(&e) != nullptr) return "IoError";
  if (dynamic_cast<const convkit::FormatError*>(&e) != nullptr) return "FormatError";
  return "Error (the base class itself)";
}

struct Case {
  const char* name;                      // the test's name: letters, digits and '_'
  std::function<void()> run;             // does the bad thing
  Kind kind;                             // the exception type it must throw
  std::vector<std::string> must_contain; // phrases its what() must hold
  std::string starts_with;               // what() must begin with this ("" = no check)
  std::string skip;                      // non-empty: a known library bug, reported, not run
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

/// Collects the rows; starting() and skipped() attach a prefix check or a skip to the row just added.
class Table {
 public:
  Table& add(const char* name, Kind kind, std::vector<std::string> must_contain, std::function<void()> run) {
    Case c;
    c.name = name;
    c.run = std::move(run);
    c.kind = kind;
    c.must_contain = std::move(must_contain);
    rows_.push_back(std::move(c));
    return *this;
  }
  /// The last row's message must start with `prefix` (a container path, a model name).
  Table& starting(const std::string& prefix) {
    rows_.back().starts_with = prefix;
    return *this;
  }
  /// The last row exposes a library bug: skipped with this reason.
  Table& skipped(const std::string& reason) {
    rows_.back().skip = reason;
    return *this;
  }
  std::vector<Case> rows() const { return rows_; }

 private:
  std::vector<Case> rows_;
};

// ---------------------------------------------------------------------------------------------
// Small helpers used by the rows.

Tensor<F> zeros(const Shape& s) { return Tensor<F>(s); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// An independent little-endian writer of the checkpoint layout in io/checkpoint.h, for files
/// that save() never writes (other versions, unknown entry kinds, short data).
struct CheckpointBytes {
  Bytes b;
  void u8(std::uint8_t v) { b.push_back(v); }
  void u32(std::uint32_t v) {
    for (int shift = 0; shift < 32; shift += 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void u64(std::uint64_t v) {
    for (int shift = 0; shift < 64; shift += 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void text(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  void header(std::uint64_t entries, std::uint32_t version = 1, std::uint32_t scalar_size = 4) {
    text("CVKTCKPT");
    u32(version);
    u32(scalar_size);
    u64(entries);
  }
  /// Kind, name length and name of an entry.
  void entry(std::uint8_t kind, const std::string& name) {
    u8(kind);
    u32(static_cast<std::uint32_t>(name.size()));
    text(name);
  }
  /// The bytes so far followed by their FNV-1a 64 hash, so the file passes the checksum.
  Bytes sealed() const {
    std::uint64_t h = 14695981039346656037ull;
    for (std::uint8_t byte : b) {
      h ^= byte;
      h *= 1099511628211ull;
    }
    CheckpointBytes out{b};
    out.u64(h);
    return out.b;
  }
};

/// Writes `bytes` as <dir>/<name> and loads it as a float checkpoint.
void load_crafted(const Bytes& bytes, const char* name = "crafted.ckpt") {
  TempDir dir;
  write_plain(dir.file(name), bytes);
  (void)Checkpoint<F>::load(dir.file(name));
}

/// A small saved float checkpoint: one tensor "w" of shape (2) — 55 bytes, body 47.
Bytes small_checkpoint_file(const TempDir& dir) {
  Checkpoint<F> c;
  c.put("w", Tensor<F>(Shape{2}, 1.5f));
  c.save(dir.file("small.ckpt"));
  return read_plain(dir.file("small.ckpt"));
}

/// An MNIST-format directory: `images` (as written) for train-images, `labels` for train-labels.
void load_mnist_from(const Bytes& images, const Bytes& labels, const data::MnistOptions& o = data::MnistOptions()) {
  TempDir dir;
  write_plain(dir.file("train-images-idx3-ubyte"), images);
  write_plain(dir.file("train-labels-idx1-ubyte"), labels);
  (void)data::load_mnist<F>(dir.str(), "train", o);
}

/// Calls forward then backward with a gradient of shape `grad`.
void backward_with(Layer<F>& layer, const Shape& input, const Shape& grad) {
  (void)layer.forward(zeros(input));
  (void)layer.backward(zeros(grad));
}

// ---------------------------------------------------------------------------------------------
// The rows, area by area.

void layer_rows(Table& t) {
  const Kind S = Kind::ShapeError, V = Kind::ValueError, St = Kind::StateError;

  // Conv2d: shapes
  t.add("Conv2d_WrongRank", S, {"Conv2d(3->8, k=3x3, s=1, p=0)", "expected input (N, 3, H, W)", "got (3, 8, 8)"},
        [] { (void)Conv2d<F>(Conv2dOptions(3, 8, 3)).forward(zeros(Shape{3, 8, 8})); });
  t.add("Conv2d_WrongChannels", S, {"Conv2d(3->8, k=3x3, s=1, p=0)", "expected input (N, 3, H, W) with H, W >= 3",
                                    "got (2, 1, 8, 8)"},
        [] { (void)Conv2d<F>(Conv2dOptions(3, 8, 3)).forward(zeros(Shape{2, 1, 8, 8})); });
  t.add("Conv2d_KernelLargerThanPaddedInput", S, {"Conv2d(1->4, k=5x5, s=1, p=1)", "H, W >= 3", "got (1, 1, 2, 2)"},
        [] { (void)Conv2d<F>(Conv2dOptions(1, 4, 5).padding(1)).forward(zeros(Shape{1, 1, 2, 2})); });
  t.add("Conv2d_DilatedKernelLargerThanInput", S, {"d=2", "H, W >= 5", "got (1, 1, 4, 4)"},
        [] { (void)Conv2d<F>(Conv2dOptions(1, 1, 3).dilation(2)).forward(zeros(Shape{1, 1, 4, 4})); });
  t.add("Conv2d_NonSquareKernelTooTall", S, {"k=3x1", "H >= 3, W >= 1", "got (1, 1, 2, 5)"},
        [] { (void)Conv2d<F>(Conv2dOptions(1, 1, 3, 1)).forward(zeros(Shape{1, 1, 2, 5})); });
  // Conv2d: hyperparameters
  t.add("Conv2d_StrideZero", V, {"Conv2d", "expected stride >= 1", "got 0x0"},
        [] { Conv2d<F> c(Conv2dOptions(1, 1, 3).stride(0)); });
  t.add("Conv2d_NegativePadding", V, {"Conv2d", "expected padding >= 0", "got -1x-1"},
        [] { Conv2d<F> c(Conv2dOptions(1, 1, 3).padding(-1)); });
  t.add("Conv2d_DilationZero", V, {"Conv2d", "expected dilation >= 1", "got 0x0"},
        [] { Conv2d<F> c(Conv2dOptions(1, 1, 3).dilation(0)); });
  t.add("Conv2d_GroupsNotDividingChannels", V,
        {"Conv2d", "expected groups >= 1 dividing in_channels 3 and out_channels 6", "got 2"},
        [] { Conv2d<F> c(Conv2dOptions(3, 6, 3).groups(2)); });
  t.add("Conv2d_KernelZero", V, {"Conv2d", "expected kernel >= 1", "got 0x3"},
        [] { Conv2d<F> c(Conv2dOptions(1, 1, 0, 3)); });
  t.add("Conv2d_InChannelsZero", V, {"Conv2d", "expected in_channels >= 1 and out_channels >= 1", "got 0 and 4"},
        [] { Conv2d<F> c(Conv2dOptions(0, 4, 3)); });
  t.add("Conv2d_BiasOfBiaslessLayer", St, {"Conv2d(1->1, k=1x1, s=1, p=0, bias=false)", "has no bias"},
        [] { (void)Conv2d<F>(Conv2dOptions(1, 1, 1).bias(false)).bias(); });

  // FullyConnected
  t.add("FullyConnected_WrongFeatureCount", S,
        {"FullyConnected(4->2)", "expected input (N, 4) or (N, C, H, W) with C·H·W = 4", "got (3, 5)"},
        [] { (void)FullyConnected<F>(4, 2).forward(zeros(Shape{3, 5})); });
  t.add("FullyConnected_Rank3Input", S, {"FullyConnected(4->2)", "expected input (N, 4)", "got (2, 2, 2)"},
        [] { (void)FullyConnected<F>(4, 2).forward(zeros(Shape{2, 2, 2})); });
  t.add("FullyConnected_InFeaturesZero", V,
        {"FullyConnected", "expected in_features >= 1 and out_features >= 1", "got 0 and 2"},
        [] { FullyConnected<F> fc(0, 2); });

  // Pooling
  t.add("MaxPool2d_KernelZero", V, {"MaxPool2d", "expected kernel >= 1 and stride >= 1", "got kernel 0x0"},
        [] { MaxPool2d<F> p(0); });
  t.add("AvgPool2d_KernelZero", V, {"AvgPool2d", "expected kernel >= 1 and stride >= 1", "got kernel 0x0"},
        [] { AvgPool2d<F> p(0); });
  t.add("MaxPool2d_StrideZero", V, {"MaxPool2d", "expected kernel >= 1 and stride >= 1", "stride 0x0"},
        [] { MaxPool2d<F> p(Pool2dOptions(2).stride(0)); });
  t.add("MaxPool2d_PaddingOverHalfKernel", V,
        {"MaxPool2d", "expected 0 <= padding <= kernel / 2", "got padding 2x2 for kernel 3x3"},
        [] { MaxPool2d<F> p(Pool2dOptions(3).padding(2)); });
  t.add("AvgPool2d_PaddingOverHalfKernel", V,
        {"AvgPool2d", "expected 0 <= padding <= kernel / 2", "got padding 0x3 for kernel 4x4"},
        [] { AvgPool2d<F> p(Pool2dOptions(4).padding(0, 3)); });
  t.add("MaxPool2d_InputTooSmall", S,
        {"MaxPool2d(k=3x3, s=3, p=0)", "expected input (N, C, H, W) with H + 2·padding >= 3", "got (1, 1, 2, 2)"},
        [] { (void)MaxPool2d<F>(3).forward(zeros(Shape{1, 1, 2, 2})); })
      .starting("MaxPool2d(");
  t.add("AvgPool2d_InputTooSmall", S,
        {"AvgPool2d(k=4x4, s=4, p=1)", "W + 2·padding >= 4", "got (1, 2, 5, 1)"},
        [] { (void)AvgPool2d<F>(Pool2dOptions(4).padding(1)).forward(zeros(Shape{1, 2, 5, 1})); })
      .starting("AvgPool2d(");
  t.add("AvgPool2d_WrongRank", S, {"AvgPool2d(k=2x2, s=2, p=0)", "expected input (N, C, H, W)", "got (4, 4)"},
        [] { (void)AvgPool2d<F>(2).forward(zeros(Shape{4, 4})); });
  t.add("AdaptiveAvgPool2d_OutputZero", V, {"AdaptiveAvgPool2d", "expected an output size >= 1", "got 0x0"},
        [] { AdaptiveAvgPool2d<F> p(0); });
  t.add("AdaptiveAvgPool2d_EmptyPlane", S,
        {"AdaptiveAvgPool2d(2x2)", "expected input (N, C, H, W) with H, W >= 1", "got (1, 1, 0, 4)"},
        [] { (void)AdaptiveAvgPool2d<F>(2).forward(zeros(Shape{1, 1, 0, 4})); });
  t.add("GlobalAvgPool2d_WrongRank", S, {"GlobalAvgPool2d", "expected input (N, C, H, W)", "got (2, 8)"},
        [] { (void)GlobalAvgPool2d<F>().forward(zeros(Shape{2, 8})); });

  // Dropout
  t.add("Dropout_POne", V, {"Dropout", "expected probability p in [0, 1)", "got 1"}, [] { Dropout<F> d(1.0); });
  t.add("Dropout_PNegative", V, {"Dropout", "expected probability p in [0, 1)", "got -0.1"},
        [] { Dropout<F> d(-0.1); });
  t.add("Dropout_PNaN", V, {"Dropout", "expected probability p in [0, 1)", "got nan"}, [] { Dropout<F> d(kNaN); });

  // LRN
  t.add("LRN_SizeZero", V, {"LRN", "expected size >= 1", "got 0"}, [] { LRN<F> l(LRNOptions(0)); });
  t.add("LRN_NegativeAlpha", V, {"LRN", "expected finite alpha >= 0, beta >= 0 and k > 0", "got alpha -1"},
        [] { LRN<F> l(LRNOptions(5).alpha(-1.0)); });
  t.add("LRN_KZero", V, {"LRN", "expected finite alpha >= 0, beta >= 0 and k > 0", "k 0"},
        [] { LRN<F> l(LRNOptions(5).k(0.0)); });
  t.add("LRN_InfiniteBeta", V, {"LRN", "expected finite alpha", "beta inf"},
        [] { LRN<F> l(LRNOptions(5).beta(kInf)); });
  t.add("LRN_WrongRank", S, {"LRN(size=5", "expected input (N, C, H, W)", "got (2, 3)"},
        [] { (void)LRN<F>().forward(zeros(Shape{2, 3})); });

  // BatchNorm2d
  t.add("BatchNorm2d_WrongChannels", S,
        {"BatchNorm2d(3, eps=1e-05, momentum=0.1)", "expected input (N, 3, H, W)", "got (2, 4, 2, 2)"},
        [] { (void)BatchNorm2d<F>(3).forward(zeros(Shape{2, 4, 2, 2})); });
  t.add("BatchNorm2d_EpsZero", V, {"BatchNorm2d", "expected eps > 0", "got 0"},
        [] { BatchNorm2d<F> b(BatchNorm2dOptions(3).eps(0.0)); });
  t.add("BatchNorm2d_MomentumTwo", V, {"BatchNorm2d", "expected momentum in [0, 1]", "got 2"},
        [] { BatchNorm2d<F> b(BatchNorm2dOptions(3).momentum(2.0)); });
  t.add("BatchNorm2d_NumFeaturesZero", V, {"BatchNorm2d", "expected num_features >= 1", "got 0"},
        [] { BatchNorm2d<F> b(0); });
  t.add("BatchNorm2d_OneValuePerChannelInTraining", S,
        {"BatchNorm2d(3, eps=1e-05, momentum=0.1): expected more than one value per channel in training mode", "got input (1, 3, 1, 1)"},
        [] { (void)BatchNorm2d<F>(3).forward(zeros(Shape{1, 3, 1, 1})); });
  t.add("BatchNorm2d_WeightOfNonAffine", St, {"BatchNorm2d(2", "affine=false", "has no weight"},
        [] { (void)BatchNorm2d<F>(BatchNorm2dOptions(2).affine(false)).weight(); });

  // Flatten
  t.add("Flatten_RankZero", S, {"Flatten", "expected input (N, ...) of rank >= 1", "got ()"},
        [] { (void)Flatten<F>().forward(Tensor<F>(Shape{})); });

  // backward before forward
  t.add("Conv2d_BackwardBeforeForward", St, {"Conv2d(1->2, k=3x3, s=1, p=0)", "backward called before forward"},
        [] { (void)Conv2d<F>(Conv2dOptions(1, 2, 3)).backward(zeros(Shape{1, 2, 2, 2})); });
  t.add("FullyConnected_BackwardBeforeForward", St, {"FullyConnected(4->2)", "backward called before forward"},
        [] { (void)FullyConnected<F>(4, 2).backward(zeros(Shape{1, 2})); });
  t.add("MaxPool2d_BackwardBeforeForward", St, {"MaxPool2d(k=2x2, s=2, p=0)", "backward called before forward"},
        [] { (void)MaxPool2d<F>(2).backward(zeros(Shape{1, 1, 1, 1})); });
  t.add("BatchNorm2d_BackwardBeforeForward", St, {"BatchNorm2d(2", "backward called before forward"},
        [] { (void)BatchNorm2d<F>(2).backward(zeros(Shape{2, 2, 2, 2})); });
  t.add("ReLU_BackwardBeforeForward", St, {"ReLU", "backward called before forward"},
        [] { (void)ReLU<F>().backward(zeros(Shape{3})); });
  t.add("LRN_BackwardBeforeForward", St, {"LRN(size=5", "backward called before forward"},
        [] { (void)LRN<F>().backward(zeros(Shape{1, 2, 2, 2})); });

  // backward with the wrong gradient shape
  t.add("Conv2d_BackwardWrongGradShape", S,
        {"Conv2d(1->2, k=3x3, s=1, p=0)", "expected grad_output (1, 2, 2, 2) (the last forward's output)",
         "got (1, 2, 3, 3)"},
        [] {
          Conv2d<F> c(Conv2dOptions(1, 2, 3));
          backward_with(c, Shape{1, 1, 4, 4}, Shape{1, 2, 3, 3});
        });
  t.add("FullyConnected_BackwardWrongGradShape", S,
        {"FullyConnected(4->2)", "expected grad_output (3, 2)", "got (3, 4)"},
        [] {
          FullyConnected<F> fc(4, 2);
          backward_with(fc, Shape{3, 4}, Shape{3, 4});
        });
  t.add("AvgPool2d_BackwardWrongGradShape", S, {"AvgPool2d(k=2x2, s=2, p=0)", "expected grad_output (1, 1, 2, 2)",
                                                "got (1, 1, 4, 4)"},
        [] {
          AvgPool2d<F> p(2);
          backward_with(p, Shape{1, 1, 4, 4}, Shape{1, 1, 4, 4});
        });
  t.add("Dropout_BackwardWrongGradShape", S, {"Dropout(p=0.5)", "expected grad_output (2, 3)", "got (3, 2)"},
        [] {
          Dropout<F> d(0.5);
          backward_with(d, Shape{2, 3}, Shape{3, 2});
        });
}

void core_rows(Table& t) {
  const Kind S = Kind::ShapeError, V = Kind::ValueError, Fo = Kind::FormatError, E = Kind::Error;
  t.add("Shape_NegativeDimension", V, {"Shape", "expected dimensions >= 0", "got -1"}, [] { Shape s{2, -1}; });
  t.add("Shape_RankFive", V, {"Shape", "expected at most 4 dimensions", "got 5"}, [] { Shape s{1, 1, 1, 1, 1}; });
  t.add("Shape_MissingDimension", S, {"Shape(2, 3)", "dimension 2 does not exist", "rank 2"},
        [] { (void)Shape{2, 3}[2]; });
  t.add("Tensor_ReshapeWrongCount", S,
        {"Tensor::reshape", "expected a shape of 6 elements like (2, 3)", "got (4) (4 elements)"},
        [] { zeros(Shape{2, 3}).reshape(Shape{4}); });
  t.add("Tensor_AtWrongIndexCount", S, {"Tensor::at", "expected 2 indices for shape (2, 3)", "got 1"},
        [] { (void)zeros(Shape{2, 3}).at(1); });
  t.add("Tensor_AtOutOfRange", S, {"Tensor::at", "index 3 of dimension 1 is out of range for shape (2, 3)"},
        [] { (void)zeros(Shape{2, 3}).at(0, 3); });
  // Sizes whose element or byte count does not fit are refused before anything is allocated.
  t.add("Shape_ElementCountOverflow", V, {"Shape: expected at most 2^48 elements", "got dimension 1099511627776"},
        [] { Tensor<F> huge(Shape{Index{1} << 40, Index{1} << 40}); });
  t.add("Shape_NegativeProductOverflow", V, {"Shape: expected at most 2^48 elements"},
        [] { (void)Shape{Index{3} << 30, Index{3} << 30, 3}; });
  t.add("Tensor_ByteCountOverflow", V, {"Shape: expected at most 2^48 elements", "got dimension 2305843009213693953"},
        [] { Tensor<F> huge(Shape{(Index{1} << 61) + 1}); });
  t.add("Tensor_OutOfMemoryIsAConvkitError", E, {"Tensor: cannot allocate 4398046511104 bytes", "out of memory"},
        [] { Tensor<F> huge(Shape{Index{1} << 40}); });
  t.add("Rng_SetStateGarbage", Fo, {"Rng::set_state", "expected a state written by Rng::state()", "got 5 characters"},
        [] { Rng().set_state("hello"); });
  t.add("Rng_BelowZero", V, {"Rng::below", "expected n > 0", "got 0"}, [] { (void)Rng(1).below(0); });
  t.add("Init_UniformLowAboveHigh", V, {"init::uniform", "expected low <= high", "got 2 > 1"}, [] {
    Tensor<F> w(Shape{2});
    Rng rng(1);
    init::uniform(w, 2.0, 1.0, rng);
  });
  t.add("Metrics_PredictRank4", S, {"predict_classes", "expected logits (N, C) with C >= 1", "got (1, 2, 1, 1)"},
        [] { (void)predict_classes(zeros(Shape{1, 2, 1, 1})); });
  t.add("Metrics_ConfusionLabelOutOfRange", V, {"ConfusionMatrix", "expected classes in [0, 3)", "got label 3"},
        [] { ConfusionMatrix(3).add({3}, {0}); });
}

void container_rows(Table& t) {
  const Kind S = Kind::ShapeError, V = Kind::ValueError, St = Kind::StateError;

  t.add("Sequential_NullLayer", V, {"Sequential::add", "expected a layer, got nullptr for 'c1'"},
        [] { Sequential<F>().add("c1", nullptr); });
  t.add("Sequential_DuplicateName", V, {"Sequential::add", "a child is already named 'conv'"}, [] {
    Sequential<F> s;
    s.add("conv", std::make_unique<ReLU<F>>());
    s.add("conv", std::make_unique<ReLU<F>>());
  });
  t.add("Sequential_DottedName", V, {"Sequential::add", "expected a non-empty name without '.'", "got 'a.b'"},
        [] { Sequential<F>().add("a.b", std::make_unique<ReLU<F>>()); });
  t.add("Sequential_EmptyName", V, {"Sequential::add", "expected a non-empty name without '.'", "got ''"},
        [] { Sequential<F>().add("", std::make_unique<ReLU<F>>()); });
  t.add("Sequential_IndexOutOfRange", V, {"Sequential", "index 5 is out of range for 1 children"}, [] {
    Sequential<F> s;
    s.add(std::make_unique<ReLU<F>>());
    (void)s[5];
  });
  t.add("Sequential_NoSuchChild", V, {"Sequential", "no child named 'fc'"}, [] { (void)Sequential<F>().child("fc"); });
  t.add("Sequential_NestedChildPath", S,
        {"features.1: MaxPool2d(k=3x3, s=3, p=0)", "expected input (N, C, H, W) with H + 2·padding >= 3",
         "got (1, 2, 2, 2)"},
        [] {
          auto features = std::make_unique<Sequential<F>>();
          features->add(std::make_unique<Conv2d<F>>(Conv2dOptions(1, 2, 3)));
          features->add(std::make_unique<MaxPool2d<F>>(3));
          Sequential<F> net;
          net.add("features", std::move(features));
          net.add("flatten", std::make_unique<Flatten<F>>());
          (void)net.forward(zeros(Shape{1, 1, 4, 4}));
        })
      .starting("features.1: ");
  t.add("Sequential_ThreeLevelPath", S,
        {"features.block.conv: Conv2d(4->4, k=3x3, s=1, p=0)", "expected input (N, 4, H, W)", "got (1, 3, 8, 8)"},
        [] {
          auto block = std::make_unique<Sequential<F>>();
          block->add("conv", std::make_unique<Conv2d<F>>(Conv2dOptions(4, 4, 3)));
          auto features = std::make_unique<Sequential<F>>();
          features->add("relu", std::make_unique<ReLU<F>>());
          features->add("block", std::move(block));
          Sequential<F> net;
          net.add("features", std::move(features));
          (void)net.forward(zeros(Shape{1, 3, 8, 8}));
        })
      .starting("features.block.conv: ");
  t.add("Sequential_SummaryNamesFailingChild", S, {"f5: FullyConnected(400->120)", "got (1, 256)"},
        [] {
          Rng rng(1);
          (void)models::lenet5<F>(rng).summary(Shape{1, 1, 28, 28});
        })
      .starting("f5: ");

  t.add("Concat_DifferentSpatialSizes", S,
        {"Concat(3 branches)", "expected branch outputs (N, C_i, H, W) that differ only in channels",
         "got a (1, 2, 5, 5), b (1, 3, 3, 3), c (1, 1, 5, 5)"},
        [] {
          Concat<F> c;
          c.add("a", std::make_unique<Conv2d<F>>(Conv2dOptions(1, 2, 1)));
          c.add("b", std::make_unique<Conv2d<F>>(Conv2dOptions(1, 3, 3)));
          c.add("c", std::make_unique<ReLU<F>>());
          (void)c.forward(zeros(Shape{1, 1, 5, 5}));
        });
  t.add("Concat_BranchRejectsInput", S, {"b: Conv2d(2->1, k=1x1, s=1, p=0)", "expected input (N, 2, H, W)"},
        [] {
          Concat<F> c;
          c.add("a", std::make_unique<ReLU<F>>());
          c.add("b", std::make_unique<Conv2d<F>>(Conv2dOptions(2, 1, 1)));
          (void)c.forward(zeros(Shape{1, 1, 3, 3}));
        })
      .starting("b: ");
  t.add("Concat_NoBranch", S, {"Concat(0 branches)", "has no branch to apply"},
        [] { (void)Concat<F>().forward(zeros(Shape{1, 1, 2, 2})); });
  t.add("Concat_DuplicateBranch", V, {"Concat::add", "a branch is already named 'x'"}, [] {
    Concat<F> c;
    c.add("x", std::make_unique<ReLU<F>>());
    c.add("x", std::make_unique<ReLU<F>>());
  });

  t.add("Residual_BodyIdentityShapeMismatch", S,
        {"Residual(1 layers + identity)", "expected the body and the shortcut to give one shape",
         "got body (1, 4, 3, 3) and identity shortcut (1, 2, 3, 3)"},
        [] {
          Residual<F> r;
          r.add("conv", std::make_unique<Conv2d<F>>(Conv2dOptions(2, 4, 1)));
          (void)r.forward(zeros(Shape{1, 2, 3, 3}));
        });
  t.add("Residual_BodyProjectionShapeMismatch", S,
        {"Residual(1 layers + downsample)", "got body (1, 4, 4, 4) and downsample (1, 4, 2, 2)"},
        [] {
          Residual<F> r;
          r.add("conv", std::make_unique<Conv2d<F>>(Conv2dOptions(2, 4, 1)));
          r.set_shortcut("downsample", std::make_unique<Conv2d<F>>(Conv2dOptions(2, 4, 1).stride(2)));
          (void)r.forward(zeros(Shape{1, 2, 4, 4}));
        });
  t.add("Residual_ShortcutOfIdentity", St, {"Residual(0 layers + identity)", "the shortcut is the identity"},
        [] { (void)Residual<F>().shortcut(); });
  t.add("Residual_BodyNameTakenByShortcut", V, {"Residual::add", "the shortcut is already named 'downsample'"}, [] {
    Residual<F> r;
    r.set_shortcut("downsample", std::make_unique<ReLU<F>>());
    r.add("downsample", std::make_unique<ReLU<F>>());
  });

  t.add("AuxiliaryHead_SetOutputGradBeforeForward", St,
        {"AuxiliaryHead(loss weight 0.3)", "set_output_grad without a training-mode forward"},
        [] { AuxiliaryHead<F>(std::make_unique<FullyConnected<F>>(4, 3)).set_output_grad(zeros(Shape{2, 3})); });
  t.add("AuxiliaryHead_SetOutputGradAfterEvalForward", St, {"set_output_grad without a training-mode forward"}, [] {
    AuxiliaryHead<F> a(std::make_unique<FullyConnected<F>>(4, 3));
    a.eval();
    (void)a.forward(zeros(Shape{2, 4}));
    a.set_output_grad(zeros(Shape{2, 3}));
  });
  t.add("AuxiliaryHead_WrongOutputGradShape", Kind::ShapeError,
        {"AuxiliaryHead(loss weight 0.3)", "expected an output gradient (2, 3)", "got (2, 4)"}, [] {
          AuxiliaryHead<F> a(std::make_unique<FullyConnected<F>>(4, 3));
          (void)a.forward(zeros(Shape{2, 4}));
          a.set_output_grad(zeros(Shape{2, 4}));
        });
  t.add("AuxiliaryHead_NegativeLossWeight", V, {"AuxiliaryHead", "expected a finite loss weight >= 0", "got -1"},
        [] { AuxiliaryHead<F> a(std::make_unique<ReLU<F>>(), -1.0); });
}

void loss_rows(Table& t) {
  const Kind S = Kind::ShapeError, V = Kind::ValueError, St = Kind::StateError;
  t.add("SoftmaxCE_LabelOutOfRange", V, {"SoftmaxCrossEntropy", "label 3 at index 1", "out of range [0, 3)"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{2, 3}), {0, 3}); });
  t.add("SoftmaxCE_NegativeLabel", V, {"SoftmaxCrossEntropy", "label -1 at index 0", "out of range [0, 3)"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{2, 3}), {-1, 0}); });
  t.add("SoftmaxCE_WrongLabelCount", S, {"SoftmaxCrossEntropy", "expected 2 labels for logits (2, 3)", "got 1"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{2, 3}), {0}); });
  t.add("SoftmaxCE_PixelwiseLabelCount", S, {"SoftmaxCrossEntropy", "expected 4 labels for logits (1, 3, 2, 2)",
                                             "got 1"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{1, 3, 2, 2}), {0}); });
  t.add("SoftmaxCE_Rank3Logits", S,
        {"SoftmaxCrossEntropy", "expected logits (N, C) or (N, C, H, W) with C >= 1", "got (2, 3, 4)"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{2, 3, 4}), {0, 1}); });
  t.add("SoftmaxCE_EmptyBatch", S, {"SoftmaxCrossEntropy", "expected at least one label", "got logits (0, 3)"},
        [] { (void)SoftmaxCrossEntropy<F>().forward(zeros(Shape{0, 3}), {}); });
  t.add("SoftmaxCE_BackwardBeforeForward", St, {"SoftmaxCrossEntropy", "backward called before forward"},
        [] { (void)SoftmaxCrossEntropy<F>().backward(); });
  t.add("SigmoidCE_TargetAboveOne", V, {"SigmoidCrossEntropy", "target 1.5 at index 2", "outside [0, 1]"}, [] {
    Tensor<F> targets(Shape{2, 2});
    targets[2] = 1.5f;
    (void)SigmoidCrossEntropy<F>().forward(zeros(Shape{2, 2}), targets);
  });
  t.add("SigmoidCE_TargetNaN", V, {"SigmoidCrossEntropy", "target nan at index 0", "outside [0, 1]"},
        [] { (void)SigmoidCrossEntropy<F>().forward(zeros(Shape{1}), Tensor<F>(Shape{1}, static_cast<F>(kNaN))); });
  t.add("SigmoidCE_ShapeMismatch", S,
        {"SigmoidCrossEntropy", "expected non-empty targets of the logits' shape (2, 3)", "got (3, 2)"},
        [] { (void)SigmoidCrossEntropy<F>().forward(zeros(Shape{2, 3}), zeros(Shape{3, 2})); });
  t.add("SigmoidCE_BackwardBeforeForward", St, {"SigmoidCrossEntropy", "backward called before forward"},
        [] { (void)SigmoidCrossEntropy<F>().backward(); });
  t.add("Euclidean_ShapeMismatch", S,
        {"Euclidean", "expected a target of the prediction's shape (2, 3)", "got (2, 4)"},
        [] { (void)Euclidean<F>().forward(zeros(Shape{2, 3}), zeros(Shape{2, 4})); });
  t.add("Euclidean_BackwardBeforeForward", St, {"Euclidean", "backward called before forward"},
        [] { (void)Euclidean<F>().backward(); });
}

void optimiser_rows(Table& t) {
  const Kind V = Kind::ValueError;
  // Every optimiser row works on the parameters of one small layer.
  const auto sgd = [](const SgdOptions& o) {
    FullyConnected<F> fc(2, 2);
    SGD<F> opt(fc.named_parameters(), o);
  };
  const auto adam = [](const AdamOptions& o) {
    FullyConnected<F> fc(2, 2);
    Adam<F> opt(fc.named_parameters(), o);
  };
  t.add("SGD_MomentumOne", V, {"SGD", "expected momentum in [0, 1)", "got 1"},
        [sgd] { sgd(SgdOptions(0.1).momentum(1.0)); });
  t.add("SGD_NegativeWeightDecay", V, {"SGD", "expected a finite weight_decay >= 0", "got -0.01"},
        [sgd] { sgd(SgdOptions(0.1).weight_decay(-0.01)); });
  t.add("SGD_NesterovWithoutMomentum", V, {"SGD", "Nesterov needs momentum > 0", "got 0"},
        [sgd] { sgd(SgdOptions(0.1).nesterov(true)); });
  t.add("SGD_NaNLearningRate", V, {"Optimizer", "expected a finite learning rate >= 0", "got nan"},
        [sgd] { sgd(SgdOptions(kNaN)); });
  t.add("SGD_NegativeLearningRate", V, {"Optimizer", "expected a finite learning rate >= 0", "got -0.1"},
        [sgd] { sgd(SgdOptions(-0.1)); });
  t.add("SGD_InfiniteLearningRate", V, {"Optimizer", "expected a finite learning rate >= 0", "got inf"},
        [sgd] { sgd(SgdOptions(kInf)); });
  t.add("Optimizer_SetNegativeLearningRate", V, {"Optimizer", "expected a finite learning rate >= 0", "got -2"}, [] {
    FullyConnected<F> fc(2, 2);
    SGD<F> opt(fc.named_parameters(), SgdOptions(0.1));
    opt.set_learning_rate(-2.0);
  });
  t.add("Optimizer_SetNegativeSteps", V, {"Optimizer", "expected steps >= 0", "got -1"}, [] {
    FullyConnected<F> fc(2, 2);
    SGD<F> opt(fc.named_parameters(), SgdOptions(0.1));
    opt.set_steps(-1);
  });
  t.add("Adam_Beta1One", V, {"Adam", "expected betas in [0, 1)", "got 1 and 0.999"},
        [adam] { adam(AdamOptions().betas(1.0, 0.999)); });
  t.add("Adam_Beta2Negative", V, {"Adam", "expected betas in [0, 1)", "got 0.9 and -0.5"},
        [adam] { adam(AdamOptions().betas(0.9, -0.5)); });
  t.add("Adam_BetaNaN", V, {"Adam", "expected betas in [0, 1)", "got nan and 0.999"},
        [adam] { adam(AdamOptions().betas(kNaN, 0.999)); });
  t.add("Adam_EpsZero", V, {"Adam", "expected a finite eps > 0", "got 0"}, [adam] { adam(AdamOptions().eps(0.0)); });
  t.add("Adam_NegativeWeightDecay", V, {"Adam", "expected a finite weight_decay >= 0", "got -1"},
        [adam] { adam(AdamOptions().weight_decay(-1.0)); });
  t.add("Adam_InfiniteEps", V, {"Adam", "expected a finite eps > 0", "got inf"},
        [adam] { adam(AdamOptions().eps(std::numeric_limits<double>::infinity())); });
  t.add("SGD_InfiniteWeightDecay", V, {"SGD", "expected a finite weight_decay >= 0", "got inf"},
        [sgd] { sgd(SgdOptions(0.1).weight_decay(std::numeric_limits<double>::infinity())); });
  t.add("CosineAnnealing_InfiniteBaseRate", V, {"CosineAnnealing", "(finite)", "base_lr inf"},
        [] { CosineAnnealing s(std::numeric_limits<double>::infinity(), 10); });
  t.add("Adam_NegativeLearningRate", V, {"Optimizer", "expected a finite learning rate >= 0", "got -0.001"},
        [adam] { adam(AdamOptions(-1e-3)); });

  // Schedules
  t.add("StepDecay_StepSizeZero", V,
        {"StepDecay", "expected a finite base_lr >= 0, step_size >= 1, gamma in (0, 1]", "got 0.1, 0, 0.5"},
        [] { StepDecay s(0.1, 0, 0.5); });
  t.add("StepDecay_GammaZero", V, {"StepDecay", "gamma in (0, 1]", "got 0.1, 10, 0"}, [] { StepDecay s(0.1, 10, 0.0); });
  t.add("StepDecay_GammaAboveOne", V, {"StepDecay", "gamma in (0, 1]", "got 0.1, 10, 1.5"},
        [] { StepDecay s(0.1, 10, 1.5); });
  t.add("StepDecay_NegativeBaseRate", V, {"StepDecay", "expected a finite base_lr >= 0", "got -0.1, 10, 0.5"},
        [] { StepDecay s(-0.1, 10, 0.5); });
  t.add("CosineAnnealing_TotalZero", V,
        {"CosineAnnealing", "expected total >= 1 and 0 <= min_lr <= base_lr", "got total 0, base_lr 0.1, min_lr 0"},
        [] { CosineAnnealing s(0.1, 0); });
  t.add("CosineAnnealing_MinAboveBase", V,
        {"CosineAnnealing", "0 <= min_lr <= base_lr", "got total 100, base_lr 0.1, min_lr 0.2"},
        [] { CosineAnnealing s(0.1, 100, 0.2); });
  t.add("CosineAnnealing_NegativeMin", V, {"CosineAnnealing", "0 <= min_lr <= base_lr", "min_lr -0.01"},
        [] { CosineAnnealing s(0.1, 100, -0.01); });
}

void data_rows(Table& t) {
  const Kind V = Kind::ValueError, Io = Kind::IoError, Fo = Kind::FormatError;
  const auto idx_of = [](const Bytes& bytes) {
    TempDir dir;
    write_plain(dir.file("bad-idx-ubyte"), bytes);
    (void)data::read_idx(dir.file("bad-idx-ubyte"));
  };

  t.add("Idx_MissingFile", Io, {"IDX file ", "/no-such-idx3-ubyte", "cannot open it for reading"}, [] {
    TempDir dir;
    (void)data::read_idx(dir.file("no-such-idx3-ubyte"));
  });
  t.add("Idx_Directory", Io, {"IDX file ", "/a-directory", "cannot read it after 0 bytes"}, [] {
    TempDir dir;
    std::filesystem::create_directory(dir.file("a-directory"));
    (void)data::read_idx(dir.file("a-directory"));
  });
  t.add("Idx_WrongMagic", Fo,
        {"/bad-idx-ubyte", "expected magic bytes 0x00 0x00 at byte offset 0", "got 8 3"},
        [idx_of] { idx_of({8, 3, 8, 1, 0, 0, 0, 1, 7}); });
  t.add("Idx_WrongElementType", Fo,
        {"/bad-idx-ubyte", "expected element type 0x08 (unsigned byte) at byte offset 2", "got 0xd"},
        [idx_of] { idx_of(idx_bytes({1}, {0, 0, 0, 0}, 0x0D)); });
  t.add("Idx_TruncatedHeader", Fo,
        {"/bad-idx-ubyte", "expected a 4-byte header at byte offset 0", "got 3 bytes in all"},
        [idx_of] { idx_of({0, 0, 8}); });
  t.add("Idx_TruncatedDimensionSizes", Fo,
        {"/bad-idx-ubyte", "expected 3 dimension sizes at byte offset 4", "the file ends at byte 10"},
        [idx_of] { idx_of({0, 0, 8, 3, 0, 0, 0, 2, 0, 0}); });
  t.add("Idx_ZeroDimensions", Fo, {"/bad-idx-ubyte", "expected 1 to 4 dimensions at byte offset 3", "got 0"},
        [idx_of] { idx_of({0, 0, 8, 0}); });
  t.add("Idx_TruncatedData", Fo,
        {"/bad-idx-ubyte", "expected 6 data bytes from byte offset 12", "got 4 (truncated)"},
        [idx_of] { idx_of(idx_bytes({2, 3}, {1, 2, 3, 4})); });
  t.add("Idx_TrailingBytes", Fo, {"/bad-idx-ubyte", "expected 2 data bytes from byte offset 8", "got 3 (trailing bytes)"},
        [idx_of] { idx_of(idx_bytes({2}, {1, 2, 3})); });
  t.add("Idx_DimensionProductWrapsToZero", Fo,
        {"/bad-idx-ubyte", "dimension sizes at byte offset 4 multiply to more than 2^40 elements"},
        [idx_of] { idx_of(idx_bytes({1u << 20, 1u << 20, 1u << 24}, {})); });
  t.add("IdxGz_Truncated", Fo, {"/cut-idx3-ubyte.gz", "truncated or corrupt gzip data"}, [] {
    TempDir dir;
    Bytes image(6 * 7 * 7);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<std::uint8_t>(i * 37);
    write_gz(dir.file("whole.gz"), idx_bytes({6, 7, 7}, image));
    Bytes gz = read_plain(dir.file("whole.gz"));
    gz.resize(gz.size() / 2);
    write_plain(dir.file("cut-idx3-ubyte.gz"), gz);
    (void)data::read_idx(dir.file("cut-idx3-ubyte.gz"));
  });
  t.add("IdxGz_CorruptChecksum", Fo, {"/crc-idx1-ubyte.gz", "corrupt gzip data", "incorrect data check"}, [] {
    TempDir dir;
    write_gz(dir.file("crc-idx1-ubyte.gz"), idx_bytes({4}, {1, 2, 3, 4}));
    Bytes gz = read_plain(dir.file("crc-idx1-ubyte.gz"));
    gz[gz.size() - 8] ^= 0xFF;  // the CRC-32 of the gzip trailer
    write_plain(dir.file("crc-idx1-ubyte.gz"), gz);
    (void)data::read_idx(dir.file("crc-idx1-ubyte.gz"));
  });
  t.add("IdxGz_GarbageAfterMagic", Fo, {"/junk-idx1-ubyte.gz", "corrupt gzip data"}, [] {
    TempDir dir;
    write_plain(dir.file("junk-idx1-ubyte.gz"), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    (void)data::read_idx(dir.file("junk-idx1-ubyte.gz"));
  });

  t.add("IdxGz_BytesAfterTheGzipData", Fo, {"/tail-idx1-ubyte.gz", "4 unexpected bytes after the gzip data"}, [] {
    TempDir dir;
    write_gz(dir.file("tail-idx1-ubyte.gz"), idx_bytes({4}, {1, 2, 3, 4}));
    Bytes gz = read_plain(dir.file("tail-idx1-ubyte.gz"));
    gz.insert(gz.end(), {0, 0, 0, 0});
    write_plain(dir.file("tail-idx1-ubyte.gz"), gz);
    (void)data::read_idx(dir.file("tail-idx1-ubyte.gz"));
  });
  t.add("IdxGz_MoreDataThanTheHeaderDeclares", Fo,
        {"/long-idx1-ubyte.gz", "expected 4 data bytes from byte offset 8", "got more (trailing bytes)"}, [] {
          TempDir dir;
          write_gz(dir.file("long-idx1-ubyte.gz"), idx_bytes({4}, Bytes(1 << 20, 7)));
          (void)data::read_idx(dir.file("long-idx1-ubyte.gz"));
        });
  t.add("Mnist_MissingFiles", Io, {"MNIST data", "/train-images-idx3-ubyte(.gz)", "found neither"}, [] {
    TempDir dir;
    (void)data::load_mnist<F>(dir.str(), "train");
  });
  t.add("Mnist_BadSplit", V, {"load_mnist", "expected split \"train\" or \"t10k\"", "got \"test\""},
        [] { (void)data::load_mnist<F>("/nonexistent", "test"); });
  t.add("Mnist_ImagesWithTwoDimensions", Fo,
        {"/train-images-idx3-ubyte", "expected 3 dimensions (N, H, W)", "got 2"},
        [] { load_mnist_from(idx_bytes({2, 4}, Bytes(8)), idx_bytes({2}, {0, 1})); });
  t.add("Mnist_LabelsWithTwoDimensions", Fo, {"/train-labels-idx1-ubyte", "expected 1 dimension (N)", "got 2"},
        [] { load_mnist_from(idx_bytes({2, 2, 2}, Bytes(8)), idx_bytes({2, 1}, {0, 1})); });
  t.add("Mnist_LabelCountDiffersFromImageCount", Fo,
        {"/train-images-idx3-ubyte and ", "/train-labels-idx1-ubyte", "expected as many labels as images",
         "got 2 labels for 3 images"},
        [] { load_mnist_from(idx_bytes({3, 2, 2}, Bytes(12)), idx_bytes({2}, {0, 1})); });
  t.add("Mnist_LabelOutOfRange", Fo,
        {"/train-labels-idx1-ubyte", "label 10 of item 1 at byte offset 9", "out of range [0, 10)"},
        [] { load_mnist_from(idx_bytes({3, 2, 2}, Bytes(12)), idx_bytes({3}, {0, 10, 2})); });
  t.add("Mnist_StdZero", V, {"MnistOptions", "expected pad >= 0 and std > 0", "std 0"}, [] {
    load_mnist_from(idx_bytes({1, 2, 2}, Bytes(4)), idx_bytes({1}, {0}), data::MnistOptions().standardize(0.5, 0.0));
  });

  t.add("Batcher_BatchSizeZero", V, {"Batcher", "expected size >= 0 and batch_size >= 1", "got 10 and 0"},
        [] { data::Batcher b(10, 0); });
  t.add("Batcher_BatchOutOfRange", V, {"Batcher", "batch 4 is out of range for 4 batches"},
        [] { (void)data::Batcher(10, 3, false).batch(4); });
  t.add("Gather_SampleOutOfRange", V, {"gather", "sample index 2 is out of range for a dataset of 2"}, [] {
    data::Dataset<F> d;
    d.images = zeros(Shape{2, 1, 2, 2});
    d.labels = {0, 1};
    d.num_classes = 2;
    Tensor<F> x;
    std::vector<Index> y;
    data::gather(d, {0, 2}, x, y);
  });
}

void checkpoint_rows(Table& t) {
  const Kind V = Kind::ValueError, Io = Kind::IoError, Fo = Kind::FormatError;

  t.add("Checkpoint_MissingFile", Io, {"checkpoint ", "/absent.ckpt", "cannot open it for reading"}, [] {
    TempDir dir;
    (void)Checkpoint<F>::load(dir.file("absent.ckpt"));
  });
  t.add("Checkpoint_SaveIntoMissingDirectory", Io, {"checkpoint ", "/no/such/dir.ckpt", "cannot open",
                                                    "/no/such/dir.ckpt.tmp for writing"},
        [] {
          TempDir dir;
          Checkpoint<F> c;
          c.save(dir.file("no/such/dir.ckpt"));
        });
  t.add("Checkpoint_TooShort", Fo, {"/crafted.ckpt", "expected at least 32 bytes (header and checksum)", "got 10"},
        [] { load_crafted(Bytes(10, 0)); });
  t.add("Checkpoint_WrongMagic", Fo,
        {"/crafted.ckpt", "expected magic \"CVKTCKPT\" at byte offset 0", "not a convkit checkpoint"}, [] {
          CheckpointBytes w;
          w.text("NOTACKPT");
          w.u32(1);
          w.u32(4);
          w.u64(0);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_WrongVersion", Fo, {"/crafted.ckpt", "expected format version 1 at byte offset 8", "got 2"}, [] {
    CheckpointBytes w;
    w.header(0, /*version=*/2);
    load_crafted(w.sealed());
  });
  t.add("Checkpoint_FloatFileLoadedAsDouble", Fo,
        {"/small.ckpt", "expected double data (scalar size 8) at byte offset 12", "got scalar size 4"}, [] {
          TempDir dir;
          small_checkpoint_file(dir);
          (void)Checkpoint<double>::load(dir.file("small.ckpt"));
        });
  t.add("Checkpoint_DoubleFileLoadedAsFloat", Fo,
        {"/wide.ckpt", "expected float data (scalar size 4) at byte offset 12", "got scalar size 8"}, [] {
          TempDir dir;
          Checkpoint<double> c;
          c.put("w", Tensor<double>(Shape{2}));
          c.save(dir.file("wide.ckpt"));
          (void)Checkpoint<F>::load(dir.file("wide.ckpt"));
        });
  t.add("Checkpoint_ChecksumMismatch", Fo,
        {"/small.ckpt", "checksum at byte offset 47 does not match the contents", "corrupt or truncated file"}, [] {
          TempDir dir;
          Bytes b = small_checkpoint_file(dir);
          b[b.size() - 9] ^= 0x01;  // the last data byte
          write_plain(dir.file("small.ckpt"), b);
          (void)Checkpoint<F>::load(dir.file("small.ckpt"));
        });
  t.add("Checkpoint_TruncatedFile", Fo,
        {"/small.ckpt", "checksum at byte offset 37 does not match", "corrupt or truncated file"}, [] {
          TempDir dir;
          Bytes b = small_checkpoint_file(dir);
          b.resize(b.size() - 10);
          write_plain(dir.file("small.ckpt"), b);
          (void)Checkpoint<F>::load(dir.file("small.ckpt"));
        });
  t.add("Checkpoint_MissingEntryWithValidChecksum", Fo,
        {"/crafted.ckpt", "expected entry kind (1 bytes) at byte offset 24", "only 0 bytes remain"}, [] {
          CheckpointBytes w;
          w.header(1);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_ShortTensorData", Fo,
        {"/crafted.ckpt", "expected tensor data (16 bytes) at byte offset 39", "only 8 bytes remain"}, [] {
          CheckpointBytes w;
          w.header(1);
          w.entry(1, "w");
          w.u8(1);
          w.u64(4);
          w.u32(0);
          w.u32(0);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_UnknownEntryKind", Fo,
        {"/crafted.ckpt", "expected entry kind 1 or 2 at byte offset 24", "got 3"}, [] {
          CheckpointBytes w;
          w.header(1);
          w.entry(3, "w");
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_RankFive", Fo, {"/crafted.ckpt", "tensor 'w' at byte offset 24", "has rank 5",
                                    "expected at most 4"},
        [] {
          CheckpointBytes w;
          w.header(1);
          w.entry(1, "w");
          w.u8(5);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_HugeTensorSizes", Fo, {"/crafted.ckpt", "tensor 'w' at byte offset 24",
                                           "has sizes larger than the file"},
        [] {
          CheckpointBytes w;
          w.header(1);
          w.entry(1, "w");
          w.u8(2);
          w.u64(1u << 20);
          w.u64(1u << 20);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_TensorSizesWrapAround", Fo, {"/crafted.ckpt", "tensor 'w' at byte offset 24",
                                                "has sizes larger than the file"},
        [] {  // 2^36 · 2^36 · 2^36 = 2^108 wraps to 0 in 64 bits: checked before multiplying
          CheckpointBytes w;
          w.header(1);
          w.entry(1, "w");
          w.u8(3);
          for (int i = 0; i < 3; ++i) w.u64(std::uint64_t{1} << 36);
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_DuplicateEntry", Fo, {"/crafted.ckpt", "entry 'e' at byte offset 38", "appears twice"}, [] {
    CheckpointBytes w;
    w.header(2);
    for (int i = 0; i < 2; ++i) {
      w.entry(2, "e");
      w.u64(0);
    }
    load_crafted(w.sealed());
  });
  t.add("Checkpoint_TrailingBytes", Fo, {"/crafted.ckpt", "3 unexpected bytes after the last entry at byte offset 24"},
        [] {
          CheckpointBytes w;
          w.header(0);
          w.text("xyz");
          load_crafted(w.sealed());
        });
  t.add("Checkpoint_PutDuplicateName", V, {"Checkpoint", "expected a new, non-empty entry name", "got 'w'"}, [] {
    Checkpoint<F> c;
    c.put("w", zeros(Shape{1}));
    c.put_text("w", "again");
  });
  t.add("Checkpoint_NoSuchTensor", Fo, {"checkpoint", "expected a tensor named 'bias'", "found none"},
        [] { (void)Checkpoint<F>().tensor("bias"); });

  t.add("LoadParameters_MissingEntry", Fo, {"checkpoint", "missing entry 'bias' for parameter bias"}, [] {
    FullyConnected<F> fc(2, 2);
    Checkpoint<F> c;
    c.put("weight", zeros(Shape{2, 2}));
    load_parameters(c, fc.named_parameters(), "");
  });
  t.add("LoadParameters_ExtraEntry", Fo, {"checkpoint", "unexpected entry 'fc.scale' matches no parameter"}, [] {
    FullyConnected<F> fc(2, 2);
    Checkpoint<F> c;
    save_parameters(c, fc.named_parameters(), "fc.");
    c.put("fc.scale", zeros(Shape{2}));
    load_parameters(c, fc.named_parameters(), "fc.");
  });
  t.add("LoadParameters_MisShapedEntry", Fo, {"checkpoint", "entry 'weight' has shape (3, 2)", "expected (2, 2)"},
        [] {
          FullyConnected<F> fc(2, 2);
          Checkpoint<F> c;
          c.put("weight", zeros(Shape{3, 2}));
          c.put("bias", zeros(Shape{2}));
          load_parameters(c, fc.named_parameters(), "");
        });
  t.add("LoadParameters_FileIntoOtherArchitecture", Fo,
        {"/fc.ckpt", "entry '0.weight' has shape (2, 2)", "expected (2, 3)"},
        [] {
          TempDir dir;
          Sequential<F> saved;
          saved.add(std::make_unique<FullyConnected<F>>(2, 2));
          save_parameters(dir.file("fc.ckpt"), saved);
          Sequential<F> other;
          other.add(std::make_unique<FullyConnected<F>>(3, 2));
          load_parameters(dir.file("fc.ckpt"), other);
        })
      .starting("checkpoint ");
  t.add("LoadTrainingState_MissingOptimiserEntry", Fo,
        {"/state.ckpt", "missing optimiser entry 'optimizer.weight.momentum'"}, [] {
          TempDir dir;
          FullyConnected<F> fc(2, 2);
          Rng rng(7);
          SGD<F> plain(fc.named_parameters(), SgdOptions(0.1));
          save_training_state(dir.file("state.ckpt"), fc, plain, 3, rng);
          SGD<F> with_momentum(fc.named_parameters(), SgdOptions(0.1).momentum(0.9));
          (void)load_training_state(dir.file("state.ckpt"), fc, with_momentum, rng);
        });
  t.add("LoadTrainingState_MisShapedOptimiserEntry", Fo,
        {"/state.ckpt", "optimiser entry 'optimizer.weight.momentum' has shape (2, 2)", "expected (2, 3)"}, [] {
          TempDir dir;
          Rng rng(7);
          FullyConnected<F> small(2, 2);
          SGD<F> a(small.named_parameters(), SgdOptions(0.1).momentum(0.9));
          save_training_state(dir.file("state.ckpt"), small, a, 1, rng);
          FullyConnected<F> wide(3, 2);
          SGD<F> b(wide.named_parameters(), SgdOptions(0.1).momentum(0.9));
          (void)load_training_state(dir.file("state.ckpt"), wide, b, rng);
        });
}

void model_rows(Table& t) {
  const Kind S = Kind::ShapeError, V = Kind::ValueError;
  t.add("Resnet_Depth20", V, {"resnet", "expected depth 18, 34, 50, 101 or 152", "got 20"}, [] {
    Rng rng(1);
    (void)models::resnet<F>(20, rng);
  });
  t.add("Alexnet_Input32", S,
        {"alexnet: input (1, 3, 32, 32) does not fit", "features.12: MaxPool2d(k=3x3, s=2, p=0)",
         "H + 2·padding >= 3", "got (1, 256, 1, 1)"},
        [] {
          Rng rng(1);
          (void)models::alexnet<F>(rng, models::ModelOptions().num_classes(10).input_size(32));
        })
      .starting("alexnet: ");
  t.add("Build_UnknownName", V, {"models::build", "unknown model 'resnet20'", "known: lenet5, alexnet", "resnet152"},
        [] {
          Rng rng(1);
          (void)models::build<F>("resnet20", rng);
        });
  t.add("Resnet_NumClassesZero", V,
        {"resnet18", "expected num_classes >= 1, in_channels >= 1 and input sizes >= 1", "got 0 classes, 3 channels, input 224x224"}, [] {
          Rng rng(1);
          (void)models::resnet<F>(18, rng, models::ModelOptions().num_classes(0));
        });
  t.add("Build_AlexnetInChannelsZero", V, {"alexnet", "in_channels >= 1", "0 channels"}, [] {
    Rng rng(1);
    (void)models::build<F>("alexnet", rng, models::ModelOptions().in_channels(0));
  });
  t.add("Lenet5_Input28", S, {"f5: FullyConnected(400->120)", "C·H·W = 400", "got (1, 256)"},
        [] {
          Rng rng(1);
          (void)models::lenet5<F>(rng).forward(zeros(Shape{1, 1, 28, 28}));
        })
      .starting("f5: ");
  t.add("Build_Lenet5NumClassesZero", V, {"lenet5: expected num_classes >= 1 and in_channels >= 1", "got 0 and 1"},
        [] {
          Rng rng(1);
          (void)models::build<F>("lenet5", rng, models::ModelOptions().num_classes(0));
        });
}

std::vector<Case> all_cases() {
  Table t;
  layer_rows(t);
  core_rows(t);
  container_rows(t);
  loss_rows(t);
  optimiser_rows(t);
  data_rows(t);
  checkpoint_rows(t);
  model_rows(t);
  return t.rows();
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = all_cases();
  return all;
}

// ---------------------------------------------------------------------------------------------
// The test.

class ErrorTable : public ::testing::TestWithParam<Case> {};

TEST_P(ErrorTable, ThrowsTheRightTypeWithExpectedAndGot) {
  const Case& c = GetParam();
  if (!c.skip.empty()) {
    GTEST_SKIP() << c.skip;
  }
  std::string what;
  std::string type;
  try {
    c.run();
  } catch (const convkit::Error& e) {
    what = e.what();
    type = type_name_of(e);
  } catch (const std::bad_alloc& e) {
    FAIL() << "std::bad_alloc escaped instead of a convkit " << kind_name(c.kind) << ": " << e.what();
  } catch (const std::exception& e) {
    FAIL() << "a non-convkit exception escaped (" << typeid(e).name() << "): " << e.what();
  } catch (...) {
    FAIL() << "something that is not a std::exception was thrown";
  }
  ASSERT_FALSE(type.empty()) << "threw nothing; expected a " << kind_name(c.kind);
  EXPECT_EQ(type, kind_name(c.kind)) << "message: " << what;
  for (const std::string& phrase : c.must_contain) {
    EXPECT_TRUE(convkit::testing::contains(what, phrase));
  }
  if (!c.starts_with.empty()) {
    EXPECT_TRUE(convkit::testing::starts_with(what, c.starts_with));
  }
}

INSTANTIATE_TEST_SUITE_P(AllAreas, ErrorTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ErrorTableShape, HasAtLeastSixtyUniquelyNamedRows) {
  EXPECT_GE(cases().size(), 60u);
  std::set<std::string> names;
  for (const Case& c : cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate row name " << c.name;
    EXPECT_FALSE(c.must_contain.empty()) << c.name << " checks no phrase";
  }
}

}  // namespace
