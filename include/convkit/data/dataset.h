// convkit/data/dataset.h — an in-memory image classification dataset and the MNIST loader.
//
// MNIST and Fashion-MNIST come as four IDX files in one directory:
//   train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
//   t10k-labels-idx1-ubyte, each plain or ".gz".
// Pixels are scaled to [0, 1] (x/255), optionally standardised ((x − mean)/std), and
// zero-padded on every side (28×28 → 32×32 for LeNet-5 with padding 2).
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"
#include "convkit/data/idx.h"

namespace convkit::data {

/// Images (N, C, H, W) and one label in [0, num_classes) per image.
template <typename T>
struct Dataset {
  Tensor<T> images;
  std::vector<Index> labels;
  Index num_classes = 0;

  Index size() const { return static_cast<Index>(labels.size()); }
};

class MnistOptions {
 public:
  /// Zero padding added on each side (2 turns 28×28 into LeNet-5's 32×32).
  MnistOptions& pad(Index p) { pad_ = p; return *this; }
  /// Standardise pixels after scaling to [0, 1]: (x − mean) / std.
  MnistOptions& standardize(double mean, double std) { mean_ = mean, std_ = std; return *this; }
  /// Keep only the first n images (n < 0: all).
  MnistOptions& limit(Index n) { limit_ = n; return *this; }
  Index pad() const { return pad_; }
  double mean() const { return mean_; }
  double std() const { return std_; }
  Index limit() const { return limit_; }

 private:
  Index pad_ = 0;
  double mean_ = 0.0, std_ = 1.0;
  Index limit_ = -1;
};

/// The path of `name` or `name.gz` in dir, whichever exists.
/// @throws IoError naming both if neither exists.
inline std::string find_data_file(const std::string& dir, const std::string& name) {
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  for (const std::string& candidate : {base.string() + ".gz", base.string()})
    if (std::filesystem::exists(candidate)) return candidate;
  CONVKIT_CHECK(false, IoError, "MNIST data: expected " << base.string() << "(.gz), found neither");
  return {};
}

/// True if dir holds all four MNIST-format files (plain or .gz).
inline bool has_mnist_files(const std::string& dir) {
  for (const char* n : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"}) {
    const std::filesystem::path base = std::filesystem::path(dir) / n;
    if (!std::filesystem::exists(base.string() + ".gz") && !std::filesystem::exists(base)) return false;
  }
  return true;
}

/// Builds a dataset from an images IDX array (N, H, W) and a labels IDX array (N).
/// @throws FormatError for mismatched counts or a label >= num_classes (with its byte offset).
template <typename T>
Dataset<T> make_image_dataset(const IdxArray& images, const std::string& images_path, const IdxArray& labels,
                              const std::string& labels_path, Index num_classes, const MnistOptions& o) {
  CONVKIT_CHECK(images.dims.size() == 3, FormatError,
                "IDX file " << images_path << ": expected 3 dimensions (N, H, W), got " << images.dims.size());
  CONVKIT_CHECK(labels.dims.size() == 1, FormatError,
                "IDX file " << labels_path << ": expected 1 dimension (N), got " << labels.dims.size());
  CONVKIT_CHECK(images.dims[0] == labels.dims[0], FormatError,
                "IDX files " << images_path << " and " << labels_path << ": expected as many labels as images, got "
                             << labels.dims[0] << " labels for " << images.dims[0] << " images");
  CONVKIT_CHECK(o.pad() >= 0 && o.std() > 0.0, ValueError,
                "MnistOptions: expected pad >= 0 and std > 0, got pad " << o.pad() << ", std " << o.std());
  const Index n = o.limit() >= 0 ? std::min(o.limit(), images.dims[0]) : images.dims[0];
  const Index h = images.dims[1], w = images.dims[2], p = o.pad();
  Dataset<T> d;
  d.num_classes = num_classes;
  d.images = Tensor<T>(Shape{n, 1, h + 2 * p, w + 2 * p});
  const T zero = static_cast<T>((0.0 - o.mean()) / o.std());
  d.images.fill(zero);
  const T scale = static_cast<T>(1.0 / (255.0 * o.std())), shift = static_cast<T>(-o.mean() / o.std());
  const Index hp = h + 2 * p, wp = w + 2 * p;
  for (Index i = 0; i < n; ++i)
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x)
        d.images[(i * hp + y + p) * wp + x + p] =
            static_cast<T>(images.values[static_cast<std::size_t>((i * h + y) * w + x)]) * scale + shift;
  d.labels.resize(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    const Index label = labels.values[static_cast<std::size_t>(i)];
    CONVKIT_CHECK(label < num_classes, FormatError,
                  "IDX file " << labels_path << ": label " << label << " of item " << i << " at byte offset " << 8 + i
                              << " is out of range [0, " << num_classes << ")");
    d.labels[static_cast<std::size_t>(i)] = label;
  }
  return d;
}

/// Mean and standard deviation of the raw pixels (scaled to [0, 1], padding excluded) of an
/// MNIST-format images file, for MnistOptions::standardize.
/// @throws IoError/FormatError as read_idx.
inline std::pair<double, double> idx_pixel_mean_std(const std::string& images_path) {
  const IdxArray a = read_idx(images_path);
  CONVKIT_CHECK(!a.values.empty(), FormatError, "IDX file " << images_path << ": expected pixels, got none");
  double s = 0.0, s2 = 0.0;
  for (std::uint8_t v : a.values) {
    const double x = v / 255.0;
    s += x;
    s2 += x * x;
  }
  const double n = static_cast<double>(a.values.size()), mean = s / n;
  return {mean, std::sqrt(std::max(s2 / n - mean * mean, 1e-12))};
}

/// Loads split "train" or "t10k" of an MNIST-format directory (10 classes).
/// @throws IoError for missing files; FormatError for malformed ones; ValueError for a bad split.
template <typename T>
Dataset<T> load_mnist(const std::string& dir, const std::string& split, const MnistOptions& o = MnistOptions()) {
  CONVKIT_CHECK(split == "train" || split == "t10k", ValueError,
                "load_mnist: expected split \"train\" or \"t10k\", got \"" << split << "\"");
  const std::string images_path = find_data_file(dir, split + "-images-idx3-ubyte");
  const std::string labels_path = find_data_file(dir, split + "-labels-idx1-ubyte");
  return make_image_dataset<T>(read_idx(images_path), images_path, read_idx(labels_path), labels_path, 10, o);
}

}  // namespace convkit::data
