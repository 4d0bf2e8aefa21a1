// visualize — pictures of what a LeNet-5 checkpoint from lenet5_mnist has learned:
//   c1_filters.png     the six 5×5 filters of C1 (grey = 0, white positive, black negative)
//   feature_maps.png   one test image, its six C1 maps and sixteen C3 maps (after ReLU)
//   curve.png          train and test loss, and test accuracy, per epoch (from --log CSV)
//
//   visualize lenet5.ckpt --log lenet5.csv [--image 0] [--data DIR] [--out DIR]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/convkit.h>

#include "support/canvas.h"

using namespace convkit;
using canvas::Canvas;
using canvas::Rgb;

namespace {

const Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrey{128, 128, 128}, kBlue{31, 119, 180}, kOrange{255, 127, 14},
    kGreen{44, 160, 44};

/// Draws each (h, w) plane of `t` (one sample: C planes) as a tile; scaled to [lo, hi].
int tile_row(Canvas& cv, int x, int y, const Tensor<float>& t, int scale, bool symmetric) {
  const Index c = t.dim(1), h = t.dim(2), w = t.dim(3);
  for (Index k = 0; k < c; ++k) {
    const float* p = t.data() + k * h * w;
    float lo = *std::min_element(p, p + h * w), hi = *std::max_element(p, p + h * w);
    if (symmetric) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
    cv.tile(x, y, p, static_cast<int>(h), static_cast<int>(w), scale, lo, hi);
    x += static_cast<int>(w) * scale + 6;
  }
  return x;
}

struct LogRow {
  double epoch, train_loss, test_loss, test_accuracy;
};

std::vector<LogRow> read_log(const std::string& path) {
  std::ifstream in(path);
  CONVKIT_CHECK(in.good(), IoError, "cannot read the log " << path);
  std::vector<LogRow> rows;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::istringstream is(line);
    for (std::string f; std::getline(is, f, ',');) v.push_back(std::stod(f));
    CONVKIT_CHECK(v.size() >= 5, FormatError, path << ": expected 7 comma-separated numbers, got '" << line << "'");
    rows.push_back(LogRow{v[0], v[1], v[3], 100.0 * v[4]});
  }
  CONVKIT_CHECK(!rows.empty(), FormatError, path << ": no epochs logged");
  return rows;
}

/// One panel: a framed plot of series over epochs, y from lo to hi, with a title and ticks.
void panel(Canvas& cv, int x, int y, int w, int h, const std::string& title, const std::vector<LogRow>& rows,
           const std::vector<std::pair<double LogRow::*, Rgb>>& series, double lo, double hi, const char* fmt) {
  cv.text(x, y - 22, title, kBlack);
  cv.rect(x, y, w, 1, kBlack), cv.rect(x, y + h, w, 1, kBlack), cv.rect(x, y, 1, h, kBlack), cv.rect(x + w, y, 1, h + 1, kBlack);
  const double e0 = rows.front().epoch, e1 = std::max(rows.back().epoch, e0 + 1);
  auto px = [&](double e) { return x + (e - e0) / (e1 - e0) * w; };
  auto py = [&](double v) { return y + h - (v - lo) / (hi - lo) * h; };
  for (int t = 0; t <= 4; ++t) {
    const double v = lo + (hi - lo) * t / 4;
    char label[32];
    std::snprintf(label, sizeof label, fmt, v);
    cv.rect(x - 6, static_cast<int>(py(v)), 6, 1, kBlack);
    cv.text(x - 12 - Canvas::text_width(label), static_cast<int>(py(v)) - 7, label, kBlack);
  }
  const int step = std::max(1, static_cast<int>(rows.size()) / 8);
  for (std::size_t i = 0; i < rows.size(); i += static_cast<std::size_t>(step)) {
    const int ex = static_cast<int>(px(rows[i].epoch));
    cv.rect(ex, y + h, 1, 6, kBlack);
    cv.text(ex - 6, y + h + 10, std::to_string(static_cast<int>(rows[i].epoch)), kBlack);
  }
  for (const auto& [member, colour] : series)
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const double ex = px(rows[i].epoch), ey = py(rows[i].*member);
      cv.rect(static_cast<int>(ex) - 3, static_cast<int>(ey) - 3, 7, 7, colour);
      if (i > 0) cv.line(px(rows[i - 1].epoch), py(rows[i - 1].*member), ex, ey, colour, 3);
    }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pictures of a LeNet-5 checkpoint: C1 filters, feature maps, training curves"};
  std::string checkpoint, log_path, data_dir, out = ".";
  Index image = 0;
  app.add_option("checkpoint", checkpoint, "Checkpoint written by lenet5_mnist (--save)")->required();
  app.add_option("--log", log_path, "The CSV log written by lenet5_mnist --log (for curve.png)");
  app.add_option("--image", image, "Index of the test image for feature_maps.png")->check(CLI::Range(0, 9999));
  app.add_option("--data", data_dir, "Directory with the test IDX files (default: from the checkpoint's dataset)");
  app.add_option("--out", out, "Directory for the pictures");
  CLI11_PARSE(app, argc, argv);
  try {
    const Checkpoint<float> c = Checkpoint<float>::load(checkpoint);
    Rng rng(0);
    Sequential<float> net = models::lenet5<float>(rng, c.tensor("model.output.bias").numel());
    load_parameters(c, net.named_parameters(), "model.", "checkpoint " + checkpoint);
    net.eval();

    // C1's filters (6, 1, 5, 5), 5x5 tiles scaled 16 times.
    Canvas filters(6 * (5 * 16 + 6) + 6, 5 * 16 + 12, kGrey);
    tile_row(filters, 6, 6, dynamic_cast<Conv2d<float>&>(net.child("c1")).weight().value.reshaped(Shape{1, 6, 5, 5}), 16, true);
    filters.save_png(out + "/c1_filters.png");

    // One test image through c1..relu3.
    const bool fashion = c.has_text("meta.dataset") && c.text("meta.dataset") == "Fashion-MNIST";
    if (data_dir.empty()) data_dir = fashion ? "/usr/share/datasets/fashion-mnist" : "data/mnist";
    const double mean = c.has_text("meta.mean") ? std::stod(c.text("meta.mean")) : 0.0;
    const double stddev = c.has_text("meta.std") ? std::stod(c.text("meta.std")) : 1.0;
    const auto test = data::load_mnist<float>(data_dir, "t10k", data::MnistOptions().pad(2).standardize(mean, stddev));
    CONVKIT_CHECK(image < test.size(), ValueError, "--image: expected an index below " << test.size() << ", got " << image);
    Tensor<float> h(Shape{1, 1, 32, 32});
    std::copy(test.images.data() + image * 1024, test.images.data() + (image + 1) * 1024, h.data());
    Canvas maps(16 * (10 * 6 + 6) + 6, 32 * 4 + 28 * 3 + 10 * 6 + 4 * 20, kWhite);
    std::string label = std::to_string(test.labels[static_cast<std::size_t>(image)]);
    if (c.has_text("meta.classes")) {
      std::istringstream names(c.text("meta.classes"));
      std::string name;
      for (Index k = 0; std::getline(names, name, ','); ++k)
        if (k == test.labels[static_cast<std::size_t>(image)]) label += ", " + name;
    }
    maps.text(6, 4, "test image " + std::to_string(image) + " (label " + label + ")", kBlack);
    tile_row(maps, 6, 24, h, 4, false);
    int y = 24 + 32 * 4 + 24;
    for (Index i = 0; i < net.size(); ++i) {
      h = net[i].forward(h);
      if (net.name(i) == "relu1" || net.name(i) == "relu3") {
        maps.text(6, y - 20, net.name(i) == "relu1" ? "c1 maps (28x28, after relu)" : "c3 maps (10x10, after relu)", kBlack);
        tile_row(maps, 6, y, h, net.name(i) == "relu1" ? 3 : 6, false);
        y += static_cast<int>(h.dim(2)) * (net.name(i) == "relu1" ? 3 : 6) + 30;
      }
      if (net.name(i) == "relu3") break;
    }
    maps.save_png(out + "/feature_maps.png");
    std::printf("wrote %s/c1_filters.png and %s/feature_maps.png\n", out.c_str(), out.c_str());

    if (!log_path.empty()) {
      const std::vector<LogRow> rows = read_log(log_path);
      double hi = 0, alo = 100, ahi = 0;
      for (const LogRow& r : rows) {
        hi = std::max({hi, r.train_loss, r.test_loss});
        alo = std::min(alo, r.test_accuracy), ahi = std::max(ahi, r.test_accuracy);
      }
      Canvas curve(900, 700, kWhite);
      panel(curve, 110, 50, 760, 250, "loss per epoch: train (blue), test (orange)", rows,
            {{&LogRow::train_loss, kBlue}, {&LogRow::test_loss, kOrange}}, 0.0, hi * 1.05, "%.2f");
      panel(curve, 110, 390, 760, 250, "test accuracy (%) per epoch", rows, {{&LogRow::test_accuracy, kGreen}},
            std::floor(alo - 1), std::ceil(ahi + 1), "%.1f");
      curve.text(430, 675, "epoch", kBlack);
      curve.save_png(out + "/curve.png");
      std::printf("wrote %s/curve.png (%zu epochs)\n", out.c_str(), rows.size());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
