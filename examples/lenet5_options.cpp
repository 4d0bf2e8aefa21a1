// The LeNet-5 trainer's command line with CLI11 (see lenet5_options.h).
#include "lenet5_options.h"

#include <CLI/CLI.hpp>

int parse_trainer_options(int argc, char** argv, TrainerOptions& o) {
  CLI::App app{"Train LeNet-5 on MNIST-format data with convkit"};
  app.add_option("--data", o.data_dir, "Directory with the four IDX files (plain or .gz)");
  app.add_option("--dataset", o.dataset, "Dataset when --data is not given")
      ->check(CLI::IsMember({"mnist", "fashion-mnist"}));
  app.add_option("--epochs", o.epochs, "Epochs to train (total, counting resumed ones)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--batch-size", o.batch_size, "Mini-batch size")->check(CLI::Range(1, 65536));
  app.add_option("--lr", o.lr, "Initial learning rate")->check(CLI::PositiveNumber);
  app.add_option("--optimizer", o.optimizer, "sgd or adam")->check(CLI::IsMember({"sgd", "adam"}));
  app.add_option("--momentum", o.momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999));
  app.add_option("--weight-decay", o.weight_decay, "L2 weight decay")->check(CLI::Range(0.0, 1.0));
  app.add_option("--schedule", o.schedule, "Learning-rate schedule: none or cosine (per step, to 0)")
      ->check(CLI::IsMember({"none", "cosine"}));
  app.add_option("--normalize", o.normalize,
                 "Pixels: 'unit' = x/255 in [0, 1]; 'standardize' = (x/255 - mean)/std with the training "
                 "set's statistics")
      ->check(CLI::IsMember({"unit", "standardize"}));
  app.add_option("--seed", o.seed, "Seed for initialisation and shuffling");
  app.add_option("--threads", o.threads, "Threads for the GEMMs (needs an OpenMP build)")
      ->check(CLI::Range(1, 256));
  app.add_option("--save", o.save_path, "Checkpoint written after every epoch ('' to skip)");
  app.add_option("--resume", o.resume_path, "Checkpoint to continue from");
  app.add_option(
      "--log", o.log_path,
      "CSV file that gets one line per epoch (epoch, losses, accuracies, seconds); appended to on --resume");
  app.add_option("--limit", o.limit, "Use only the first N training images (quick runs)");
  app.add_flag("--eval-only", o.eval_only, "Only evaluate (the model from --resume) on the test set");
  app.add_flag("--detect-anomaly", o.detect_anomaly,
               "Check every layer's outputs and gradients; stop at the first NaN or infinity, naming the "
               "layer (slower)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return -1;
}
