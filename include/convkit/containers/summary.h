// convkit/containers/summary.h — the model summary table: every layer's path, type, output
// shape, trainable parameters and multiply-adds for one input shape, with totals.
//
//   path          layer                          output shape        parameters   mult-adds
//   c1            Conv2d(1->6, k=5x5, s=1, p=0)  (1, 6, 28, 28)              156      117600
// Rows of nested layers (max_depth > 1) are indented by their depth. A container's row
// counts its children's parameters and multiply-adds; the totals count each layer once.
#pragma once

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/layers/layer.h"

namespace convkit {

/// The summary of `model`'s children (down to max_depth levels) for `input`.
/// @throws ShapeError naming the failing child's path if the input does not flow through.
template <typename T>
std::string summary(const Layer<T>& model, const Shape& input, int max_depth = 1) {
  std::vector<SummaryRow> rows;
  model.summarize(input, "", 0, std::max(1, max_depth), rows);
  const SummaryRow top = rows.front();
  rows.erase(rows.begin());
  std::size_t wpath = 5, wlayer = 6, wshape = 13;
  for (const SummaryRow& r : rows) {
    wpath = std::max(wpath, 2 * static_cast<std::size_t>(r.depth - 1) + r.path.size());
    wlayer = std::max(wlayer, r.layer.size());
    wshape = std::max(wshape, r.output.to_string().size());
  }
  const int wp = static_cast<int>(wpath + 2), wl = static_cast<int>(wlayer + 2), ws = static_cast<int>(wshape + 2);
  const int wn = 14;
  const std::string rule(static_cast<std::size_t>(wp + wl + ws + 2 * wn), '-');
  std::ostringstream os;
  os << std::left << std::setw(wp) << "path" << std::setw(wl) << "layer" << std::setw(ws) << "output shape"
     << std::right << std::setw(wn) << "parameters" << std::setw(wn) << "mult-adds" << '\n'
     << rule << '\n'
     << std::left << std::setw(wp) << "" << std::setw(wl) << "input" << input << '\n';
  for (const SummaryRow& r : rows) {
    const std::string indented = std::string(2 * static_cast<std::size_t>(r.depth - 1), ' ') + r.path;
    os << std::left << std::setw(wp) << indented << std::setw(wl) << r.layer << std::setw(ws)
       << r.output.to_string() << std::right << std::setw(wn) << r.parameters << std::setw(wn) << r.multiply_adds
       << '\n';
  }
  os << rule << '\n'
     << std::left << std::setw(wp + wl + ws) << "total" << std::right << std::setw(wn) << top.parameters
     << std::setw(wn) << top.multiply_adds << '\n';
  if (model.buffer_count() > 0)
    os << std::left << std::setw(wp + wl + ws) << "buffers (not trained)" << std::right << std::setw(wn)
       << model.buffer_count() << '\n';
  return os.str();
}

namespace detail {

/// A container's own summary row followed, while depth < max_depth, by those of its children;
/// `flow` calls summarize_child(name, layer, input) for each child in order and returns the
/// container's output shape.
template <typename T, typename Flow>
Shape summarize_container(const Layer<T>& self, const std::string& path, int depth,
                          int max_depth, std::vector<SummaryRow>& rows, Flow&& flow) {
  const std::size_t own = rows.size();
  rows.push_back(SummaryRow{path, depth, self.describe(), Shape{}, self.parameter_count(), 0});
  const bool expand = depth < max_depth;
  Index macs = 0;
  auto summarize_child = [&](const std::string& name, const Layer<T>& child, const Shape& in) {
    const std::string child_path = path.empty() ? name : path + "." + name;
    return with_child_path(name, [&] {
      if (expand) {
        const std::size_t at = rows.size();
        const Shape out = child.summarize(in, child_path, depth + 1, max_depth, rows);
        macs += rows[at].multiply_adds;
        return out;
      }
      macs += child.multiply_adds(in);
      return child.output_shape(in);
    });
  };
  const Shape out = flow(summarize_child);
  rows[own].output = out;
  rows[own].multiply_adds = macs;
  return out;
}

}  // namespace detail
}  // namespace convkit
