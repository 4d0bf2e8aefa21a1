// predict — classifies image files with a LeNet-5 checkpoint written by lenet5_mnist.
//
//   predict lenet5.ckpt shoe.png digit.pgm ...          top-3 classes with probabilities
//
// Each image (PNG, PGM/PPM, JPEG, BMP, ...: whatever stb_image reads) is converted to grey,
// resized to 28×28 (stb_image_resize), zero-padded to 32×32 and normalised as the checkpoint's
// training data was (its "meta.*" entries). MNIST-style data is light on a dark background:
// an image whose border is mostly light (dark ink on white paper, a product photo on white)
// is inverted first, unless --no-invert.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <convkit/convkit.h>

using namespace convkit;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string part; std::getline(is, part, sep);) out.push_back(part);
  return out;
}

double meta_number(const Checkpoint<float>& c, const std::string& key, double fallback) {
  return c.has_text("meta." + key) ? std::stod(c.text("meta." + key)) : fallback;
}

/// The image as a (1, 1, 32, 32) network input. @throws IoError if it cannot be read.
Tensor<float> load_image(const std::string& path, bool invert, double mean, double stddev) {
  int w = 0, h = 0, channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &channels, 1);
  CONVKIT_CHECK(pixels != nullptr, IoError, path << ": cannot read the image (" << stbi_failure_reason() << ")");
  std::vector<unsigned char> small(28 * 28);
  const int ok = stbir_resize_uint8(pixels, w, h, 0, small.data(), 28, 28, 0, 1);
  stbi_image_free(pixels);
  CONVKIT_CHECK(ok == 1, IoError, path << ": cannot resize the " << w << "x" << h << " image to 28x28");
  // The background decides: the mean of the outermost ring of pixels.
  double ring = 0.0;
  for (int i = 0; i < 28; ++i)
    ring += small[static_cast<std::size_t>(i)] + small[static_cast<std::size_t>(27 * 28 + i)] +
            small[static_cast<std::size_t>(i * 28)] + small[static_cast<std::size_t>(i * 28 + 27)];
  const bool flip = invert && ring / (4 * 28 * 255.0) > 0.5;
  Tensor<float> x(Shape{1, 1, 32, 32});  // zero padding of 2 pixels, as in training
  for (Index r = 0; r < 28; ++r)
    for (Index c = 0; c < 28; ++c) {
      double v = small[static_cast<std::size_t>(r * 28 + c)] / 255.0;
      if (flip) v = 1.0 - v;
      x(0, 0, r + 2, c + 2) = static_cast<float>((v - mean) / stddev);
    }
  // The padding is zero pixels, normalised like the image.
  for (Index r = 0; r < 32; ++r)
    for (Index c = 0; c < 32; ++c)
      if (r < 2 || r >= 30 || c < 2 || c >= 30) x(0, 0, r, c) = static_cast<float>(-mean / stddev);
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classify images with a LeNet-5 checkpoint from lenet5_mnist"};
  std::string checkpoint;
  std::vector<std::string> images;
  bool no_invert = false;
  std::size_t top = 3;
  app.add_option("checkpoint", checkpoint, "Checkpoint written by lenet5_mnist (--save)")->required();
  app.add_option("images", images, "Image files")->required();
  app.add_option("--top", top, "Classes to print per image")->check(CLI::Range(1, 1000));
  app.add_flag("--no-invert", no_invert, "Never invert light images");
  CLI11_PARSE(app, argc, argv);

  try {
    const Checkpoint<float> c = Checkpoint<float>::load(checkpoint);
    const Index classes = c.tensor("model.output.bias").numel();
    Rng rng(0);
    Sequential<float> model = models::lenet5<float>(rng, classes);
    load_parameters(c, model.named_parameters(), "model.", "checkpoint " + checkpoint);
    model.eval();
    std::vector<std::string> names = c.has_text("meta.classes") ? split(c.text("meta.classes"), ',') : std::vector<std::string>{};
    names.resize(static_cast<std::size_t>(classes));
    for (std::size_t k = 0; k < names.size(); ++k)
      if (names[k].empty()) names[k] = std::to_string(k);
    const double mean = meta_number(c, "mean", 0.0), stddev = meta_number(c, "std", 1.0);
    std::printf("%s: LeNet-5 for %s, %lld classes\n", checkpoint.c_str(),
                c.has_text("meta.dataset") ? c.text("meta.dataset").c_str() : "unknown data",
                static_cast<long long>(classes));

    int failures = 0;
    const NoGradGuard no_grad;  // inference only: the layers keep nothing for backward
    for (const std::string& path : images) {
      try {
        const Tensor<float> logits = model.forward(load_image(path, !no_invert, mean, stddev));
        // softmax, computed stably
        const float peak = *std::max_element(logits.begin(), logits.end());
        std::vector<double> p(static_cast<std::size_t>(classes));
        double total = 0.0;
        for (Index k = 0; k < classes; ++k) total += p[static_cast<std::size_t>(k)] = std::exp(logits[k] - peak);
        std::vector<std::size_t> order(p.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
        std::printf("%s:", path.c_str());
        for (std::size_t i = 0; i < std::min(top, order.size()); ++i)
          std::printf("%s %s %.1f%%", i ? "," : "", names[order[i]].c_str(), 100.0 * p[order[i]] / total);
        std::printf("\n");
      } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        ++failures;
      }
    }
    return failures ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
