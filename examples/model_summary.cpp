// model_summary — prints the summary table of any model builder: every layer's path, type,
// output shape, trainable parameters and multiply-adds for one input, with totals.
//
//   model_summary resnet50                      the top-level layers at 224×224
//   model_summary googlenet --depth 3 --aux     inception branches and auxiliary heads too
//   model_summary vgg16 --input-size 32 --classes 10
//   model_summary --list                        every model name
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include <convkit/convkit.h>

using namespace convkit;

int main(int argc, char** argv) {
  CLI::App app{"Print the layer-by-layer summary of a convkit model"};
  std::string name;
  Index input_size = 0, classes = 0, channels = 0, batch = 1;
  int depth = 1;
  bool aux = false, list = false;
  app.add_option("model", name, "Model name (see --list)");
  app.add_option("--input-size", input_size, "Input height = width (default: the model's native size)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--classes", classes, "Number of classes (default: 1000; 10 for lenet5)")->check(CLI::Range(1, 1000000));
  app.add_option("--channels", channels, "Input channels (default: 3; 1 for lenet5)")->check(CLI::Range(1, 4096));
  app.add_option("--batch", batch, "Batch size of the input shape")->check(CLI::Range(1, 4096));
  app.add_option("--depth", depth, "Levels of nested layers to list (1: the model's direct children)")
      ->check(CLI::Range(1, 16));
  app.add_flag("--aux", aux, "GoogLeNet: include the two auxiliary classifiers");
  app.add_flag("--list", list, "List the model names and exit");
  CLI11_PARSE(app, argc, argv);

  if (list || name.empty()) {
    for (const std::string& n : models::model_names()) std::printf("%s\n", n.c_str());
    return name.empty() && !list ? 2 : 0;
  }
  try {
    models::ModelOptions o;
    if (classes) o.num_classes(classes);
    if (channels) o.in_channels(channels);
    if (input_size && name != "lenet5") o.input_size(input_size);
    o.aux_logits(aux);
    Rng rng(0);
    Sequential<float> net = models::build<float>(name, rng, o);
    const Index size = input_size ? input_size : models::native_input_size(name);
    const Index c = channels ? channels : (name == "lenet5" ? 1 : 3);
    const Shape input{batch, c, size, size};
    std::printf("%s, input %s\n%s", name.c_str(), input.to_string().c_str(), net.summary(input, depth).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
