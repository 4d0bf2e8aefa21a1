// examples/support/canvas.h — a grey-scale or RGB picture to draw on and save as PNG
// (stb_image_write), with lines, rectangles, tiles of a tensor plane and text (stb_easy_font).
// Only the examples use it; it is not part of the library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>

#include <convkit/core/error.h>

namespace canvas {

struct Rgb {
  std::uint8_t r, g, b;
};

class Canvas {
 public:
  Canvas(int width, int height, Rgb background) : w_(width), h_(height), px_(3 * static_cast<std::size_t>(width * height)) {
    rect(0, 0, width, height, background);
  }
  int width() const { return w_; }
  int height() const { return h_; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    std::uint8_t* p = &px_[3 * static_cast<std::size_t>(y * w_ + x)];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void rect(int x, int y, int w, int h, Rgb c) {
    for (int j = y; j < y + h; ++j)
      for (int i = x; i < x + w; ++i) set(i, j, c);
  }
  /// A line `thick` pixels wide from (x0, y0) to (x1, y1).
  void line(double x0, double y0, double x1, double y1, Rgb c, int thick = 2) {
    const int steps = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int s = 0; s <= steps; ++s) {
      const double t = static_cast<double>(s) / steps;
      rect(static_cast<int>(std::lround(x0 + t * (x1 - x0))) - thick / 2,
           static_cast<int>(std::lround(y0 + t * (y1 - y0))) - thick / 2, thick, thick, c);
    }
  }
  /// values (rows × cols) as grey squares of `scale` pixels: lo black, hi white.
  void tile(int x, int y, const float* values, int rows, int cols, int scale, float lo, float hi) {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const float v = hi > lo ? (values[r * cols + c] - lo) / (hi - lo) : 0.5f;
        const auto g = static_cast<std::uint8_t>(std::lround(255.0f * std::clamp(v, 0.0f, 1.0f)));
        rect(x + c * scale, y + r * scale, scale, scale, Rgb{g, g, g});
      }
  }
  /// Text drawn with stb_easy_font (about 6 pixels a character, 7 high, before `scale`);
  /// returns the width drawn.
  int text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    std::string buffer = s;
    std::vector<char> quads(300 * (s.size() + 1));
    const int n = stb_easy_font_print(0, 0, buffer.data(), nullptr, quads.data(), static_cast<int>(quads.size()));
    struct Vertex {
      float x, y, z;
      unsigned char rgba[4];
    };
    const auto* v = reinterpret_cast<const Vertex*>(quads.data());
    for (int q = 0; q < n; ++q, v += 4)  // axis-aligned quads: corners 0 and 2 are opposite
      rect(x + static_cast<int>(v[0].x) * scale, y + static_cast<int>(v[0].y) * scale,
           static_cast<int>(v[2].x - v[0].x) * scale, static_cast<int>(v[2].y - v[0].y) * scale, c);
    return text_width(s, scale);
  }
  static int text_width(const std::string& s, int scale = 2) {
    std::string buffer = s;
    return stb_easy_font_width(buffer.data()) * scale;
  }

  /// @throws convkit::IoError if the file cannot be written.
  void save_png(const std::string& path) const {
    const int ok = stbi_write_png(path.c_str(), w_, h_, 3, px_.data(), 3 * w_);
    CONVKIT_CHECK(ok != 0, convkit::IoError, "cannot write the picture " << path);
  }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

}  // namespace canvas
