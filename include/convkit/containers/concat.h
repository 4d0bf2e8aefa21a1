// convkit/containers/concat.h — Concat: parallel branches on the same input, outputs joined
// along the channels (the inception module).
//
//   forward:  y = [b₁(x), b₂(x), …, b_K(x)] along C   each bᵢ(x) (N, Cᵢ, H', W'), y (N, ΣCᵢ, H', W')
//   backward: g = grad_output split along C into gᵢ (N, Cᵢ, H', W');  dx = Σᵢ bᵢ.backward(gᵢ)
// Every branch must produce the same N, H' and W'; output_shape() reports every branch's
// shape when they differ. Branches are named ("branch1", or their index by default), and
// parameter names are dotted paths through them ("inception3a.branch2.0.conv.weight").
#pragma once

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convkit/containers/summary.h"
#include "convkit/layers/layer.h"

namespace convkit {

template <typename T>
class Concat : public Layer<T> {
 public:
  Concat() = default;

  /// Appends a branch named by its index. @throws ValueError for a null layer.
  Concat& add(std::unique_ptr<Layer<T>> branch) { return add(std::to_string(branches_.size()), std::move(branch)); }

  /// Appends a named branch. @throws ValueError for a null layer, an empty, dotted or repeated name.
  Concat& add(const std::string& name, std::unique_ptr<Layer<T>> branch) {
    CONVKIT_CHECK(branch != nullptr, ValueError, "Concat::add: expected a layer, got nullptr for '" << name << "'");
    CONVKIT_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
                  "Concat::add: expected a non-empty name without '.', got '" << name << "'");
    for (const auto& b : branches_)
      CONVKIT_CHECK(b.first != name, ValueError, "Concat::add: a branch is already named '" << name << "'");
    branch->set_training(this->is_training());
    branch->set_needs_input_grad(this->needs_input_grad());
    branches_.emplace_back(name, std::move(branch));
    return *this;
  }

  Index size() const { return static_cast<Index>(branches_.size()); }
  /// @throws ValueError if no branch has that name.
  Layer<T>& branch(const std::string& name) {
    for (auto& b : branches_)
      if (b.first == name) return *b.second;
    CONVKIT_CHECK(false, ValueError, "Concat: no branch named '" << name << "'");
    return *branches_.front().second;  // unreachable
  }

  /// @throws ShapeError if there is no branch, a branch rejects the input (with its name),
  /// or the branches' outputs differ in anything but the channels (listing every branch).
  Shape output_shape(const Shape& input) const override {
    std::vector<Shape> outs;
    for (const auto& b : branches_)
      outs.push_back(detail::with_child_path(b.first, [&] { return b.second->output_shape(input); }));
    return joined(outs);
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "Concat(" << branches_.size() << " branches)";
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    for (auto& b : branches_) b.second->collect_parameters(out, prefix + b.first + ".");
  }

  /// Every branch sees the container's input, so each gets the flag.
  void set_needs_input_grad(bool on) override {
    Layer<T>::set_needs_input_grad(on);
    for (auto& b : branches_) b.second->set_needs_input_grad(on);
  }

  void set_training(bool on) override {
    Layer<T>::set_training(on);
    for (auto& b : branches_) b.second->set_training(on);
  }

  Index multiply_adds(const Shape& input) const override {
    Index total = 0;
    for (const auto& b : branches_)
      total += detail::with_child_path(b.first, [&] { return b.second->multiply_adds(input); });
    return total;
  }

  Shape summarize(const Shape& input, const std::string& path, int depth, int max_depth,
                  std::vector<SummaryRow>& rows) const override {
    return detail::summarize_container(*this, path, depth, max_depth, rows, [&](auto&& child) {
      std::vector<Shape> outs;
      for (const auto& b : branches_) outs.push_back(child(b.first, *b.second, input));
      return joined(outs);
    });
  }

  void visit_children(const std::function<void(const std::string&, Layer<T>&)>& fn) override {
    for (auto& b : branches_) fn(b.first, *b.second);
  }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    std::vector<Tensor<T>> outs;
    outs.reserve(branches_.size());
    for (auto& b : branches_) outs.push_back(detail::with_child_path(b.first, [&] { return b.second->forward(input); }));
    const Shape& first = outs.front().shape();
    const Index n = first[0], plane = first[2] * first[3];
    Index total = 0;
    channels_.clear();
    for (const Tensor<T>& o : outs) {
      channels_.push_back(o.dim(1));
      total += o.dim(1);
    }
    auto y = Tensor<T>::uninitialized(Shape{n, total, first[2], first[3]});
    for (Index s = 0; s < n; ++s) {
      T* dst = y.data() + s * total * plane;
      for (const Tensor<T>& o : outs) {
        const Index len = o.dim(1) * plane;
        std::copy(o.data() + s * len, o.data() + (s + 1) * len, dst);
        dst += len;
      }
    }
    return y;
  }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    const Index n = grad_output.dim(0), total = grad_output.dim(1), plane = grad_output.dim(2) * grad_output.dim(3);
    Tensor<T> grad_input;
    Index offset = 0;
    for (std::size_t k = 0; k < branches_.size(); ++k) {
      const Index ck = channels_[k];
      auto g = Tensor<T>::uninitialized(Shape{n, ck, grad_output.dim(2), grad_output.dim(3)});
      for (Index s = 0; s < n; ++s) {
        const T* src = grad_output.data() + (s * total + offset) * plane;
        std::copy(src, src + ck * plane, g.data() + s * ck * plane);
      }
      offset += ck;
      auto& b = branches_[k];
      Tensor<T> gx = detail::with_child_path(b.first, [&] { return b.second->backward(g); });
      if (!this->needs_input_grad()) continue;
      if (k == 0) {
        grad_input = std::move(gx);
      } else {
        T* dst = grad_input.data();
        const T* add = gx.data();
        for (Index i = 0; i < grad_input.numel(); ++i) dst[i] += add[i];
      }
    }
    return grad_input;
  }

 private:
  Shape joined(const std::vector<Shape>& outs) const {
    CONVKIT_CHECK(!outs.empty(), ShapeError, describe() << ": has no branch to apply");
    bool same = true;
    Index channels = 0;
    for (const Shape& s : outs) {
      same = same && s.rank() == 4 && outs.front().rank() == 4 && s[0] == outs.front()[0] &&
             s[2] == outs.front()[2] && s[3] == outs.front()[3];
      if (s.rank() == 4) channels += s[1];
    }
    if (!same) {
      std::ostringstream os;
      for (std::size_t k = 0; k < outs.size(); ++k)
        os << (k ? ", " : "") << branches_[k].first << " " << outs[k];
      CONVKIT_CHECK(false, ShapeError,
                    describe() << ": expected branch outputs (N, C_i, H, W) that differ only in channels, got "
                               << os.str());
    }
    return Shape{outs.front()[0], channels, outs.front()[2], outs.front()[3]};
  }

  std::vector<std::pair<std::string, std::unique_ptr<Layer<T>>>> branches_;
  std::vector<Index> channels_;
};

}  // namespace convkit
