// custom_layer — how to write a new Layer<T>: LeakyReLU, checked with convkit's gradient
// checker and then used inside a network like any built-in layer.
//
//   y = x            for x > 0          dx = dy
//   y = slope · x    otherwise          dx = slope · dy
//
// A layer implements four things: output_shape() (validate and say what comes out),
// describe() (one line for summaries and errors), do_forward() (compute, keep what backward
// needs) and do_backward() (return the input gradient; add parameter gradients, if any).
// The public forward()/backward() of Layer<T> check shapes and state before calling them.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/convkit.h>
#include <convkit/testing/gradcheck.h>

using namespace convkit;

template <typename T>
class LeakyReLU : public Layer<T> {
 public:
  explicit LeakyReLU(double slope = 0.01) : slope_(static_cast<T>(slope)) {
    CONVKIT_CHECK(slope >= 0 && slope < 1, ValueError, "LeakyReLU: expected slope in [0, 1), got " << slope);
  }

  Shape output_shape(const Shape& input) const override { return input; }  // any shape

  std::string describe() const override {
    std::ostringstream os;
    os << "LeakyReLU(slope=" << slope_ << ')';
    return os.str();
  }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    input_ = input;  // backward needs the sign of x
    auto y = Tensor<T>::uninitialized(input.shape());
    for (Index i = 0; i < input.numel(); ++i) y[i] = input[i] > 0 ? input[i] : slope_ * input[i];
    return y;
  }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    auto dx = Tensor<T>::uninitialized(grad_output.shape());
    for (Index i = 0; i < dx.numel(); ++i) dx[i] = input_[i] > 0 ? grad_output[i] : slope_ * grad_output[i];
    return dx;
  }

 private:
  T slope_;
  Tensor<T> input_;
};

int main() {
  Rng rng(42);

  // 1. Check the gradient in double precision, alone and inside a small network with
  //    parameters. Inputs stay away from the kink at 0, where the derivative does not exist.
  Tensor<double> x(Shape{2, 3, 4, 4});
  for (double& v : x) v = (rng.bernoulli(0.5) ? 1 : -1) * (0.1 + rng.uniform());
  LeakyReLU<double> leaky(0.1);
  const testing::GradcheckResult alone = testing::gradcheck(leaky, x, rng);
  std::printf("LeakyReLU alone:       %s\n", alone.message().c_str());

  Sequential<double> small;
  small.add("conv", std::make_unique<Conv2d<double>>(Conv2dOptions(3, 4, 3).padding(1), rng));
  small.add("leaky", std::make_unique<LeakyReLU<double>>(0.1));
  small.add("flatten", std::make_unique<Flatten<double>>());
  small.add("fc", std::make_unique<FullyConnected<double>>(FullyConnectedOptions(64, 5), rng));
  const testing::GradcheckResult net = testing::gradcheck(small, x, rng);
  std::printf("inside a network:      %s\n", net.message().c_str());
  if (!alone.ok() || !net.ok()) return 1;

  // 2. Use it in a float network: it trains like any built-in layer.
  Sequential<float> model;
  model.add("conv", std::make_unique<Conv2d<float>>(Conv2dOptions(1, 8, 3).padding(1), rng));
  model.add("leaky", std::make_unique<LeakyReLU<float>>(0.1));
  model.add("pool", std::make_unique<GlobalAvgPool2d<float>>());
  model.add("flatten", std::make_unique<Flatten<float>>());
  model.add("fc", std::make_unique<FullyConnected<float>>(FullyConnectedOptions(8, 2), rng));
  std::printf("%s", model.summary(Shape{16, 1, 8, 8}).c_str());

  // Class 1: a bright square in the middle; class 0: noise only.
  Tensor<float> images(Shape{16, 1, 8, 8});
  std::vector<Index> labels;
  for (Index n = 0; n < 16; ++n) {
    labels.push_back(n % 2);
    for (Index i = 0; i < 64; ++i) {
      const bool centre = (i / 8 >= 2 && i / 8 < 6 && i % 8 >= 2 && i % 8 < 6);
      images[n * 64 + i] = static_cast<float>(0.2 * rng.normal() + (n % 2 && centre ? 1.0 : 0.0));
    }
  }
  SGD<float> sgd(model.named_parameters(), SgdOptions(0.1).momentum(0.9));
  SoftmaxCrossEntropy<float> loss;
  for (int step = 0; step <= 50; ++step) {
    sgd.zero_grad();
    const float l = loss.forward(model.forward(images), labels);
    model.backward(loss.backward());
    sgd.step();
    if (step % 10 == 0) std::printf("step %2d: loss %.4f\n", step, l);
  }
  return 0;
}
