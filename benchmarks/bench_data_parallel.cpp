// bench_data_parallel — training throughput with DataParallel over MPI, and where each
// rank's time goes (compute, waiting for the gradient sums, the rest).
//
//   convkit_bench_data_parallel [--model lenet5|resnet18] [--batch B] [--steps N] [--threads T]
//   mpirun -np 2 convkit_bench_data_parallel ...   [--overlap 0|1] [--bucket-mb MB (25)]
// --batch is the global batch (split across the ranks). lenet5: 1×32×32 images, batch 64 by
// default; resnet18: 3×32×32 ("small input"), 10 classes, batch 32. A single process runs the
// same code with one rank. scripts/bench_mpi.sh runs 1 process × 1 thread, 1 × 2 threads and
// 2 ranks × 1 thread side by side.
#include <convkit/distributed/mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <convkit/convkit.h>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace convkit;

int main(int argc, char** argv) {
  distributed::MpiSession mpi(argc, argv);
  std::string model_name = "lenet5";
  Index batch = -1;
  int steps = 100, threads = 1, overlap = 1;
  double bucket_mb = 25;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") model_name = value;
    else if (flag == "--batch") batch = std::atol(value.c_str());
    else if (flag == "--steps") steps = std::atoi(value.c_str());
    else if (flag == "--threads") threads = std::atoi(value.c_str());
    else if (flag == "--overlap") overlap = std::atoi(value.c_str());
    else if (flag == "--bucket-mb") bucket_mb = std::atof(value.c_str());
    else {
      std::fprintf(stderr, "usage: %s [--model lenet5|resnet18] [--batch B] [--steps N] [--threads T] [--overlap 0|1] [--bucket-mb MB]\n", argv[0]);
      return 2;
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  try {
    Rng rng(1);
    const bool lenet = model_name == "lenet5";
    CONVKIT_CHECK(lenet || model_name == "resnet18", ValueError, "expected --model lenet5 or resnet18, got " << model_name);
    if (batch < 0) batch = lenet ? 64 : 32;
    Sequential<float> model = lenet ? models::lenet5<float>(rng)
                                    : models::resnet18<float>(rng, models::ModelOptions().num_classes(10).input_size(32));
    model.set_needs_input_grad(false);
    const Index channels = lenet ? 1 : 3;
    const auto random_data = [&](Index n) {
      data::Dataset<float> d;
      d.num_classes = 10;
      d.images = Tensor<float>(Shape{n, channels, 32, 32});
      for (float& v : d.images) v = static_cast<float>(rng.normal());
      for (Index i = 0; i < n; ++i) d.labels.push_back(static_cast<Index>(rng.below(10)));
      return d;
    };
    const data::Dataset<float> warm = random_data(3 * batch), timed = random_data(steps * batch);
    SGD<float> sgd(model.named_parameters(), SgdOptions(0.01).momentum(0.9));
    distributed::DataParallel<float> dp(
        mpi.comm(), model, sgd,
        distributed::DataParallelOptions().overlap(overlap != 0).bucket_bytes(static_cast<std::size_t>(bucket_mb * (1 << 20))));
    data::Batcher warm_batches(warm.size(), batch, /*shuffle=*/false), batches(timed.size(), batch, false);
    dp.train_epoch(warm, warm_batches, rng);  // 3 warm-up steps
    dp.reset_timing();
    const auto t0 = std::chrono::steady_clock::now();
    dp.train_epoch(timed, batches, rng);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const distributed::DataParallelTiming& t = dp.timing();
    // The sum of one step's gradients alone, all ranks lined up first: the cost of the
    // reduction itself, apart from waiting for a slower rank.
    std::vector<float> grads(static_cast<std::size_t>(model.parameter_count()), 1.0f);
    MPI_Barrier(mpi.comm());
    const auto t1 = std::chrono::steady_clock::now();
    const int reps = 20;
    for (int i = 0; i < reps; ++i)
      MPI_Allreduce(MPI_IN_PLACE, grads.data(), static_cast<int>(grads.size()), MPI_FLOAT, MPI_SUM, mpi.comm());
    const double allreduce = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / reps;
    if (mpi.is_root())
      std::printf("model %s batch %lld ranks %d threads %d steps %d: %.1f images/s | per step: %.2f ms "
                  "(compute %.2f, reduce wait %.2f, other %.2f) | %zu bucket(s), %.2f MB per step, allreduce alone %.3f ms\n",
                  model_name.c_str(), static_cast<long long>(batch), dp.size(), threads, steps,
                  static_cast<double>(batch * steps) / wall, 1e3 * wall / steps, 1e3 * t.compute / steps,
                  1e3 * t.reduce_wait / steps, 1e3 * t.other / steps, dp.num_buckets(), t.bytes / steps / 1e6,
                  1e3 * allreduce);
  } catch (const Error& e) {
    std::fprintf(stderr, "error (rank %d): %s\n", mpi.rank(), e.what());
    if (mpi.size() > 1) mpi.abort(1);
    return 1;
  }
  return 0;
}
