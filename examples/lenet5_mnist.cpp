// lenet5_mnist — trains LeNet-5 on MNIST (or Fashion-MNIST), reports accuracy, saves a
// checkpoint after every epoch and can resume from one.
//
// Data: --data DIR if given; else data/mnist/ if it holds the four IDX files; else MNIST is
// downloaded there (checksums verified, short timeouts); else, when MNIST cannot be had,
// Fashion-MNIST from Debian's dataset-fashion-mnist package is used, and a line says so.
//
// Started by mpirun (mpirun -np 2 lenet5_mnist ...), it trains data-parallel over MPI when
// built with convkit::mpi: --batch-size is the global batch, split across the ranks; rank 0
// prints, logs and writes the checkpoint.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <convkit/convkit.h>

#include "lenet5_options.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef CONVKIT_WITH_MPI
#include <convkit/distributed/mpi.h>
#endif

namespace fs = std::filesystem;
using namespace convkit;

namespace {

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

struct MnistFile {
  const char* name;
  const char* md5;
};
// The published MD5 sums of MNIST's four gzip files.
constexpr MnistFile kMnistFiles[] = {
    {"train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
    {"train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"},
    {"t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"},
    {"t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"},
};
constexpr const char* kMnistMirrors[] = {
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool md5_matches(const fs::path& file, const std::string& md5) {
  const std::string cmd = "echo " + quote(md5 + "  " + file.string()) + " | md5sum --check --status 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

/// Downloads MNIST into dir with curl; returns an empty string on success, else why not.
std::string download_mnist(const fs::path& dir) {
  if (std::system("command -v curl >/dev/null 2>&1") != 0) return "curl is not installed";
  fs::create_directories(dir);
  for (const MnistFile& f : kMnistFiles) {
    const fs::path target = dir / f.name;
    if (fs::exists(target) && md5_matches(target, f.md5)) continue;
    bool ok = false;
    for (const char* mirror : kMnistMirrors) {
      const std::string cmd = "curl -fsSL --connect-timeout 5 --max-time 120 -o " + quote(target.string() + ".part") +
                              " " + quote(std::string(mirror) + f.name) + " 2>/dev/null";
      if (std::system(cmd.c_str()) == 0 && md5_matches(target.string() + ".part", f.md5)) {
        fs::rename(target.string() + ".part", target);
        ok = true;
        break;
      }
    }
    fs::remove(target.string() + ".part");
    if (!ok) {
      std::error_code ignored;
      fs::remove(dir, ignored);  // only if empty: leave no empty data/mnist/ behind
      return std::string("could not download ") + f.name + " (no network, or checksum mismatch)";
    }
  }
  return "";
}

struct DataChoice {
  std::string dir;
  std::string name;  // "MNIST" or "Fashion-MNIST"
};

std::optional<DataChoice> resolve_data(const std::string& explicit_dir, const std::string& dataset) {
  if (!explicit_dir.empty()) return DataChoice{explicit_dir, dataset == "fashion-mnist" ? "Fashion-MNIST" : "MNIST"};
  if (dataset == "fashion-mnist") {
    if (data::has_mnist_files("data/fashion-mnist")) return DataChoice{"data/fashion-mnist", "Fashion-MNIST"};
    if (data::has_mnist_files(kFashionDir)) return DataChoice{kFashionDir, "Fashion-MNIST"};
    std::fprintf(stderr, "error: Fashion-MNIST not found in data/fashion-mnist/ or %s; install Debian's "
                         "dataset-fashion-mnist package or pass --data DIR\n", kFashionDir);
    return std::nullopt;
  }
  if (data::has_mnist_files("data/mnist")) return DataChoice{"data/mnist", "MNIST"};
  std::printf("MNIST not found in data/mnist/; downloading it ...\n");
  std::fflush(stdout);
  const std::string why = download_mnist("data/mnist");
  if (why.empty()) return DataChoice{"data/mnist", "MNIST"};
  if (data::has_mnist_files(kFashionDir)) {
    std::printf("MNIST unavailable (%s); using Fashion-MNIST from %s instead.\n", why.c_str(), kFashionDir);
    return DataChoice{kFashionDir, "Fashion-MNIST"};
  }
  std::fprintf(stderr, "error: MNIST unavailable (%s) and no Fashion-MNIST fallback in %s; put the four MNIST "
                       "IDX files in data/mnist/ or pass --data DIR\n", why.c_str(), kFashionDir);
  return std::nullopt;
}

/// Appends one epoch to the CSV log, writing the header first if the file is new or empty.
/// @throws IoError if the file cannot be written.
void append_log(const std::string& path, long long epoch, const EpochStats& train, const EvalStats& test,
                double seconds) {
  const bool fresh = !fs::exists(path) || fs::file_size(path) == 0;
  std::FILE* f = std::fopen(path.c_str(), "a");
  CONVKIT_CHECK(f != nullptr, IoError, "cannot open the log " << path << " for appending");
  if (fresh) std::fprintf(f, "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second\n");
  std::fprintf(f, "%lld,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f\n", epoch, train.loss, train.accuracy, test.loss,
               test.accuracy(), seconds, static_cast<double>(train.images) / seconds);
  const bool ok = std::fclose(f) == 0;
  CONVKIT_CHECK(ok, IoError, "cannot write the log " << path);
}

const std::vector<std::string> kFashionNames = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",  "Shirt",   "Sneaker",  "Bag",   "Boot"};

}  // namespace

int main(int argc, char** argv) {
  TrainerOptions opt;
  if (const int code = parse_trainer_options(argc, argv, opt); code >= 0) return code;

#ifdef CONVKIT_WITH_MPI
  std::optional<distributed::MpiSession> mpi;
  if (distributed::launched_by_mpi()) mpi.emplace(argc, argv);
  const int rank = mpi ? mpi->rank() : 0, ranks = mpi ? mpi->size() : 1;
  // Every rank must run the same training: these options are compared across the ranks.
  std::string fingerprint =
      "data " + opt.data_dir + " dataset " + opt.dataset + " epochs " + std::to_string(opt.epochs) + " batch " +
      std::to_string(opt.batch_size) + " lr " + std::to_string(opt.lr) + " " + opt.optimizer + " momentum " +
      std::to_string(opt.momentum) + " wd " + std::to_string(opt.weight_decay) + " " + opt.schedule + " " +
      opt.normalize + " seed " + std::to_string(opt.seed) + " limit " + std::to_string(opt.limit) + " resume " +
      opt.resume_path + (opt.eval_only ? " eval-only" : "") + (opt.save_path.empty() ? "" : " save");
  if (rank > 0 && !std::freopen("/dev/null", "w", stdout)) return 1;  // rank 0 alone reports
#else
  const int rank = 0, ranks = 1;
  const char* world = std::getenv("OMPI_COMM_WORLD_SIZE") ? std::getenv("OMPI_COMM_WORLD_SIZE") : std::getenv("PMI_SIZE");
  if (world != nullptr && std::atoi(world) > 1) {
    std::fprintf(stderr, "error: started by mpirun with %s processes, but this lenet5_mnist was built without MPI "
                         "(install libopenmpi-dev and rebuild); each process would train alone\n", world);
    return 2;
  }
#endif
  set_detect_anomaly(opt.detect_anomaly);
#ifdef _OPENMP
  omp_set_num_threads(opt.threads);
#else
  if (opt.threads > 1) std::printf("note: built without OpenMP; running on 1 thread\n");
#endif
  try {
#ifdef CONVKIT_WITH_MPI
    // Rank 0 finds (or downloads) the data and tells the others which it chose: every rank
    // then loads that folder (on a shared disk, or the same path on each host).
    std::optional<DataChoice> choice;
    if (rank == 0) choice = resolve_data(opt.data_dir, opt.dataset);
    if (mpi) {
      std::string chosen = choice ? choice->dir + '\n' + choice->name : "";
      int n = static_cast<int>(chosen.size());
      MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
      chosen.resize(static_cast<std::size_t>(n));
      MPI_Bcast(chosen.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
      const std::size_t cut = chosen.find('\n');
      if (rank > 0 && cut != std::string::npos) choice = DataChoice{chosen.substr(0, cut), chosen.substr(cut + 1)};
      if (choice) fingerprint += " from " + choice->dir + " (" + choice->name + ")";
    }
#else
    const std::optional<DataChoice> choice = resolve_data(opt.data_dir, opt.dataset);
#endif
    if (!choice) return 2;  // every rank alike: rank 0 found no data
    auto options = data::MnistOptions().pad(2);
    // How the pixels were prepared, saved with the checkpoint for programs that use the model.
    std::map<std::string, std::string> meta = {{"dataset", choice->name}, {"pad", "2"}, {"mean", "0"}, {"std", "1"}};
    if (opt.normalize == "standardize") {
      const auto [mean, stddev] =
          data::idx_pixel_mean_std(data::find_data_file(choice->dir, "train-images-idx3-ubyte"));
      options.standardize(mean, stddev);
      std::printf("pixels standardised with the training set's mean %.4f and std %.4f\n", mean, stddev);
      meta["mean"] = std::to_string(mean);
      meta["std"] = std::to_string(stddev);
    }
    const data::Dataset<float> train =
        data::load_mnist<float>(choice->dir, "train", data::MnistOptions(options).limit(opt.limit));
    const data::Dataset<float> test = data::load_mnist<float>(choice->dir, "t10k", options);
    std::printf("data: %s from %s, %lld training and %lld test images\n", choice->name.c_str(), choice->dir.c_str(),
                static_cast<long long>(train.size()), static_cast<long long>(test.size()));

    Rng rng(opt.seed);
    Sequential<float> model = models::lenet5<float>(rng);
    model.set_needs_input_grad(false);  // the input is data: c1 skips its data gradient
    std::unique_ptr<Optimizer<float>> optimizer;
    if (opt.optimizer == "sgd")
      optimizer = std::make_unique<SGD<float>>(
          model.named_parameters(), SgdOptions(opt.lr).momentum(opt.momentum).weight_decay(opt.weight_decay));
    else
      optimizer = std::make_unique<Adam<float>>(model.named_parameters(),
                                                AdamOptions(opt.lr).weight_decay(opt.weight_decay));

#ifdef CONVKIT_WITH_MPI
    std::optional<distributed::DataParallel<float>> dp;
    if (mpi) dp.emplace(mpi->comm(), model, *optimizer, distributed::DataParallelOptions().fingerprint(fingerprint));
#endif
    // One process, or one rank of many: the same steps.
    const auto run_epoch = [&](data::Batcher& batcher, const StepSchedule& schedule, const BatchCallback& on_batch) {
#ifdef CONVKIT_WITH_MPI
      if (dp) return dp->train_epoch(train, batcher, rng, schedule, on_batch);
#endif
      return train_epoch(model, *optimizer, train, batcher, rng, schedule, on_batch);
    };
    const auto run_evaluation = [&] {
#ifdef CONVKIT_WITH_MPI
      if (dp) return dp->evaluate(test);
#endif
      return evaluate(model, test);
    };
    const auto save = [&](long long epoch) {
#ifdef CONVKIT_WITH_MPI
      if (dp) return dp->save_training_state(opt.save_path, epoch, rng, meta);
#endif
      save_training_state(opt.save_path, model, *optimizer, epoch, rng, meta);
    };

    long long start_epoch = 0;
    if (!opt.resume_path.empty()) {
#ifdef CONVKIT_WITH_MPI
      if (dp)
        start_epoch = dp->load_training_state(opt.resume_path, rng);
      else
#endif
        start_epoch = load_training_state(opt.resume_path, model, *optimizer, rng);
      std::printf("resumed from %s after epoch %lld\n", opt.resume_path.c_str(), start_epoch);
    }
    const bool fashion = choice->name == "Fashion-MNIST";
    const std::vector<std::string> names = fashion ? kFashionNames : std::vector<std::string>{};
    std::string classes;
    for (Index k = 0; k < train.num_classes; ++k)
      classes += (k ? "," : "") + (fashion ? kFashionNames[static_cast<std::size_t>(k)] : std::to_string(k));
    meta["classes"] = classes;

    if (!opt.eval_only) {
      std::printf("LeNet-5, %lld parameters; %s lr %g%s, batch %lld, %d epochs, seed %llu, %d thread(s)%s\n",
                  static_cast<long long>(model.parameter_count()), opt.optimizer.c_str(), opt.lr,
                  opt.schedule == "cosine" ? " cosine" : "", static_cast<long long>(opt.batch_size), opt.epochs,
                  static_cast<unsigned long long>(opt.seed), opt.threads,
                  ranks > 1 ? (" on each of " + std::to_string(ranks) + " MPI ranks").c_str() : "");
      data::Batcher batcher(train.size(), opt.batch_size, /*shuffle=*/true);
      const long long total_steps = static_cast<long long>(opt.epochs) * batcher.num_batches();
      StepSchedule schedule;
      if (opt.schedule == "cosine") schedule = CosineAnnealing(opt.lr, std::max(1LL, total_steps));
      double train_seconds = 0.0;
      for (long long epoch = start_epoch; epoch < opt.epochs; ++epoch) {
        ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opt.epochs), batcher.num_batches());
        EpochStats stats;
        try {
          stats = run_epoch(batcher, schedule, [&](Index n, double l, Index c) { bar.update(n, l, c); });
        } catch (const ValueError& e) {
          bar.finish();
          if (rank > 0) return 3;  // every rank stops at the same step; rank 0 says why
          std::fprintf(stderr, "error: %s\nstopped; %s\n", e.what(),
                       opt.save_path.empty() || !fs::exists(opt.save_path)
                           ? "no checkpoint was saved"
                           : ("the last good checkpoint is " + opt.save_path).c_str());
          return 3;
        }
        const double secs = bar.finish();
        train_seconds += secs;
        const EvalStats ev = run_evaluation();
        std::printf("epoch %lld/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s, %.0f img/s\n",
                    epoch + 1, opt.epochs, stats.loss, 100.0 * stats.accuracy, ev.loss, 100.0 * ev.accuracy(), secs,
                    static_cast<double>(stats.images) / secs);
        std::fflush(stdout);
        if (!opt.log_path.empty() && rank == 0) append_log(opt.log_path, epoch + 1, stats, ev, secs);
        if (!opt.save_path.empty()) save(epoch + 1);
      }
      std::printf("training time: %.1f s\n", train_seconds);
    }
    const EvalStats ev = run_evaluation();
    std::printf("final test accuracy: %.2f%% (%lld/%lld), test loss %.4f\n", 100.0 * ev.accuracy(),
                static_cast<long long>(ev.confusion.correct()), static_cast<long long>(ev.confusion.total()), ev.loss);
    std::printf("confusion matrix (rows: true class, columns: predicted):\n%s", ev.confusion.to_string(names).c_str());
    if (!opt.eval_only && !opt.save_path.empty()) std::printf("checkpoint: %s\n", opt.save_path.c_str());
  } catch (const Error& e) {
    if (ranks > 1) {
      std::fprintf(stderr, "error (rank %d of %d): %s\n", rank, ranks, e.what());
#ifdef CONVKIT_WITH_MPI
      mpi->abort(1);  // the other ranks may be waiting for this one: end them all
#endif
    }
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
