// conv_net_demo — builds a small LeNet-style conv net from convkit layers, runs one forward
// and backward pass on a random batch, and prints each layer's output shape, the loss and
// the gradient norms. The README's first command runs this program.
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include <convkit/convkit.h>

using namespace convkit;

int main() {
  Rng rng(42);
  std::vector<std::unique_ptr<Layer<float>>> net;
  net.push_back(std::make_unique<Conv2d<float>>(Conv2dOptions(1, 6, 5), rng));
  net.push_back(std::make_unique<ReLU<float>>());
  net.push_back(std::make_unique<MaxPool2d<float>>(2));
  net.push_back(std::make_unique<Conv2d<float>>(Conv2dOptions(6, 16, 5), rng));
  net.push_back(std::make_unique<ReLU<float>>());
  net.push_back(std::make_unique<MaxPool2d<float>>(2));
  net.push_back(std::make_unique<Flatten<float>>());
  net.push_back(std::make_unique<FullyConnected<float>>(FullyConnectedOptions(400, 120), rng));
  net.push_back(std::make_unique<ReLU<float>>());
  net.push_back(std::make_unique<FullyConnected<float>>(FullyConnectedOptions(120, 10), rng));

  const Index batch = 8;
  Tensor<float> x(Shape{batch, 1, 32, 32});
  for (float& v : x) v = static_cast<float>(rng.uniform());
  std::vector<Index> labels;
  for (Index i = 0; i < batch; ++i) labels.push_back(static_cast<Index>(rng.below(10)));

  std::printf("convkit %s: a LeNet-style net on a random batch\n", kVersion);
  std::printf("%-36s %s\n", "input", x.shape().to_string().c_str());
  Tensor<float> h = x;
  for (auto& layer : net) {
    h = layer->forward(h);
    std::printf("%-36s %s\n", layer->describe().c_str(), h.shape().to_string().c_str());
  }
  SoftmaxCrossEntropy<float> loss;
  const float l = loss.forward(h, labels);
  std::printf("softmax cross-entropy loss: %.4f (log 10 = %.4f for a guess)\n", l, std::log(10.0));

  Tensor<float> g = loss.backward();
  for (auto it = net.rbegin(); it != net.rend(); ++it) g = (*it)->backward(g);
  std::printf("input gradient %s\n", g.shape().to_string().c_str());
  for (auto& layer : net)
    for (Parameter<float>* p : layer->parameters()) {
      double s = 0;
      for (float v : p->grad) s += static_cast<double>(v) * v;
      std::printf("  %-36s %-8s %-18s |grad| = %.3e\n", layer->describe().c_str(), p->name.c_str(),
                  p->value.shape().to_string().c_str(), std::sqrt(s));
    }
  return 0;
}
