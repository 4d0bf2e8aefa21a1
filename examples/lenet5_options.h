// lenet5_options.h — the LeNet-5 trainer's command line (examples/lenet5_mnist.cpp).
//
// The parsing, with CLI11, lives in its own translation unit (lenet5_options.cpp): CLI11 is a
// large header-only library that took about as long to compile as the whole training program,
// and apart the two files compile in parallel and an edit to one leaves the other alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

/// What the trainer was asked to do; the defaults are those of a bare `lenet5_mnist`.
struct TrainerOptions {
  std::string data_dir;             // --data: directory with the four IDX files
  std::string dataset = "mnist";    // --dataset: mnist or fashion-mnist
  std::string optimizer = "adam";   // --optimizer: sgd or adam
  std::string schedule = "cosine";  // --schedule: none or cosine
  std::string save_path = "lenet5.ckpt";
  std::string resume_path;
  std::string normalize = "standardize";  // --normalize: unit or standardize
  std::string log_path;
  int epochs = 15;
  int threads = 1;
  std::ptrdiff_t batch_size = 64;  // convkit::Index
  std::ptrdiff_t limit = -1;       // --limit: first N training images; -1 for all
  double lr = 1e-3;
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::uint64_t seed = 0;
  bool eval_only = false;
  bool detect_anomaly = false;
};

/// Parses the command line into `options`. Returns -1 when the trainer should go on, else the
/// exit code to end with: 0 after --help, non-zero after a bad option (the message printed).
int parse_trainer_options(int argc, char** argv, TrainerOptions& options);
