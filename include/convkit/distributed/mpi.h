// convkit/distributed/mpi.h — data-parallel training over MPI: the same trainer on N
// processes (ranks), on one machine or many. Optional: link the CMake target convkit::mpi
// (MPI found with find_package(MPI)); the core target convkit::convkit knows nothing of MPI.
//
// Every rank holds the whole model. At construction DataParallel checks that the ranks agree
// (model, optimiser, options: a clear error on every rank instead of a hang) and broadcasts
// rank 0's parameters. Each training step takes one global batch of the (identically
// shuffled) epoch; rank r computes forward and backward on its part of it, scaling its loss
// gradient by its share of the batch (n_r / B), so the sum of the ranks' gradients is the
// gradient of the global batch's mean loss. Those gradients are summed with MPI_Iallreduce
// over a few flattened buckets (about bucket_bytes each, last layers first), each started
// as soon as backward has finished its layers, while backward goes on; then every rank takes
// the same optimiser step on the same sums. Batch norm uses each rank's own batch
// statistics during training (as PyTorch's DistributedDataParallel without SyncBatchNorm);
// its running statistics are averaged across the ranks after every epoch, so evaluation and
// checkpoints see one model. Dropout draws its masks from a stream of its own on each rank.
// Only the main thread calls MPI (MPI_THREAD_FUNNELED); OpenMP threads compute.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/rng.h"
#include "convkit/data/batcher.h"
#include "convkit/data/dataset.h"
#include "convkit/io/checkpoint.h"
#include "convkit/io/file.h"
#include "convkit/layers/layer.h"
#include "convkit/optim/optimizer.h"
#include "convkit/train/trainer.h"

namespace convkit::distributed {

/// True when this process was started by an MPI launcher (Open MPI's mpirun, MPICH's
/// mpiexec, or any PMI/PMIx launcher), so a program can switch to DataParallel by itself.
inline bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

namespace detail {

/// Throws convkit::Error naming the MPI call and MPI's own explanation unless rc is MPI_SUCCESS.
inline void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  convkit::detail::throw_with_message<Error>([&](std::ostream& os) { os << call << " failed: " << text; });
}

template <typename T>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype mpi_type<std::int64_t>() { return MPI_INT64_T; }
template <>
inline MPI_Datatype mpi_type<std::uint64_t>() { return MPI_UINT64_T; }

static_assert(sizeof(Index) == sizeof(std::int64_t), "convkit::Index is reduced as a 64-bit integer");

/// FNV-1a over bytes, continuing from h.
inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 14695981039346656037ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
inline std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 14695981039346656037ull) {
  return fnv1a(s.data(), s.size(), h);
}

/// Every rank's string, in rank order.
inline std::vector<std::string> allgather_strings(MPI_Comm comm, const std::string& mine) {
  int size = 0;
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  const int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<std::size_t>(size)), offsets(static_cast<std::size_t>(size));
  mpi_check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm), "MPI_Allgather");
  long long total = 0;
  for (int r = 0; r < size; ++r) {
    offsets[static_cast<std::size_t>(r)] = static_cast<int>(total);
    total += lengths[static_cast<std::size_t>(r)];
  }
  CONVKIT_CHECK(total <= INT_MAX, ValueError, "allgather_strings: " << total << " bytes in all, expected at most " << INT_MAX);
  std::string all(static_cast<std::size_t>(total), '\0');
  mpi_check(MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, comm),
            "MPI_Allgatherv");
  std::vector<std::string> out;
  for (int r = 0; r < size; ++r)
    out.push_back(all.substr(static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]),
                             static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)])));
  return out;
}

/// Broadcasts n bytes from root in pieces of at most 1 GiB (MPI counts are ints).
inline void broadcast_bytes(MPI_Comm comm, void* data, std::size_t n, int root) {
  auto* p = static_cast<char*>(data);
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t done = 0; done < n; done += piece)
    mpi_check(MPI_Bcast(p + done, static_cast<int>(std::min(piece, n - done)), MPI_BYTE, root, comm), "MPI_Bcast");
}

/// A seed for rank `rank`'s own stream, from a state every rank shares (splitmix64).
inline std::uint64_t rank_seed(const std::string& shared_state, int rank) {
  std::uint64_t z = fnv1a(shared_state) + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(rank);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace detail

/// MPI for the life of the object: MPI_Init_thread (MPI_THREAD_FUNNELED) unless MPI is
/// already initialised, and MPI_Finalize at the end if this object initialised it.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      detail::mpi_check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
      CONVKIT_CHECK(provided >= MPI_THREAD_FUNNELED, Error,
                    "MPI_Init_thread: this MPI provides thread level " << provided << ", convkit needs MPI_THREAD_FUNNELED ("
                                                                       << MPI_THREAD_FUNNELED << ": OpenMP threads beside "
                                                                       "the one that calls MPI)");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

  /// Ends every rank of the job (MPI_Abort) with `code`: what a program does with an error
  /// that only this rank has, since the others would wait for it forever.
  [[noreturn]] void abort(int code) const {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  bool owns_ = false;
  int rank_ = 0, size_ = 1;
};

struct DataParallelOptions {
  /// Gradients are summed in flattened buckets of about this many bytes, one reduction each
  /// (25 MiB, as PyTorch's DistributedDataParallel: with overlap, smaller buckets made Open
  /// MPI 4.1's non-blocking sums slow down backward here; docs/distributed.md).
  DataParallelOptions& bucket_bytes(std::size_t v) {
    bucket_bytes_ = v;
    return *this;
  }
  /// Start each bucket's reduction (MPI_Iallreduce) as soon as backward has completed its
  /// gradients (true), or sum them all with the blocking MPI_Allreduce after backward (false).
  DataParallelOptions& overlap(bool v) {
    overlap_ = v;
    return *this;
  }
  /// Text that must be the same on every rank, such as the program's options; a difference
  /// is a ValueError at construction, on every rank, quoting both texts.
  DataParallelOptions& fingerprint(std::string v) {
    fingerprint_ = std::move(v);
    return *this;
  }

  std::size_t bucket_bytes_ = std::size_t{25} << 20;
  bool overlap_ = true;
  std::string fingerprint_;
};

/// Where a rank's training time went (seconds, summed over the steps since reset_timing()).
struct DataParallelTiming {
  long long steps = 0;
  double compute = 0.0;      // forward, loss and backward (including starting reductions)
  double reduce_wait = 0.0;  // waiting for the gradient sums after backward
  double other = 0.0;        // batch gathering, loss statistics, optimiser step
  long long reductions = 0;  // reductions of gradient buckets
  double bytes = 0.0;        // bytes of gradients this rank sent into reductions
};

/// Data-parallel training of one model replica per rank. The model and optimiser must stay
/// alive (and in place) while this object exists; it sets a backward hook on every layer
/// that owns trainable parameters, and removes them when it is destroyed.
template <typename T>
class DataParallel {
 public:
  /// Checks that every rank has the same model (parameter names, shapes), optimiser state,
  /// options and fingerprint, then copies rank 0's parameters and optimiser state to all.
  /// Collective: every rank of comm must construct it.
  /// @throws ValueError on every rank if the ranks disagree (naming the ranks and what
  /// differs) or bucket_bytes is 0.
  DataParallel(MPI_Comm comm, Layer<T>& model, Optimizer<T>& optimizer, DataParallelOptions options = {})
      : model_(model), optimizer_(optimizer), options_(std::move(options)) {
    detail::mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    try {
      check_agreement();  // bucket_bytes included: every rank throws below, or none
      CONVKIT_CHECK(options_.bucket_bytes_ > 0, ValueError, "DataParallel: expected bucket_bytes > 0, got 0");
      broadcast_state();
      for (auto& [key, rng] : convkit::detail::layer_rngs(model_)) {
        (void)key;
        if (rank_ > 0) rng->seed(detail::rank_seed(rng->state(), rank_));
      }
      build_buckets();
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
  }
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  ~DataParallel() {
    for (Layer<T>* layer : hooked_) layer->set_backward_hook({});
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  /// Number of gradient buckets (one reduction each per step).
  std::size_t num_buckets() const { return buckets_.size(); }
  const DataParallelTiming& timing() const { return timing_; }
  void reset_timing() { timing_ = DataParallelTiming{}; }

  /// One epoch over `data`: every rank must pass the same data, batcher and rng (same seed),
  /// so the global batches agree; rank r trains on part r of each. Returns, on every rank,
  /// the statistics of the whole epoch (all ranks' images); on_batch gets each global batch's.
  /// Ends with the batch-norm running statistics averaged and a check that all ranks hold
  /// the same parameters.
  /// @throws ValueError on every rank if the ranks' data or batches differ in size, or the
  /// global loss becomes non-finite (as convkit::train_epoch); StateError if the replicas
  /// have drifted apart.
  EpochStats train_epoch(const data::Dataset<T>& data, data::Batcher& batcher, Rng& rng,
                         const StepSchedule& schedule = {}, const BatchCallback& on_batch = {}) {
    using clock = std::chrono::steady_clock;
    const auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    model_.train();
    batcher.start_epoch(rng);
    {  // the first batch's indices stand for the batch size and the shuffle's seed
      const std::vector<Index> first = batcher.num_batches() > 0 ? batcher.batch(0) : std::vector<Index>{};
      check_same({data.size(), batcher.num_batches(), data.images.numel(), static_cast<std::int64_t>(first.size()),
                  static_cast<std::int64_t>(detail::fnv1a(first.data(), first.size() * sizeof(Index)) >> 1)},
                 "the training data (images, batches, scalars, first batch's size, hash of its shuffled indices)");
    }
    convkit::detail::ClassifierLoss<T> loss(model_);
    Tensor<T> x;
    std::vector<Index> y, shard;
    EpochStats stats;
    double loss_sum = 0.0;
    Index correct_sum = 0;
    for (Index b = 0; b < batcher.num_batches(); ++b) {
      const auto t0 = clock::now();
      const std::vector<Index> global = batcher.batch(b);
      const Index n_global = static_cast<Index>(global.size());
      const Index lo = n_global * rank_ / size_, hi = n_global * (rank_ + 1) / size_;
      shard.assign(global.begin() + lo, global.begin() + hi);
      if (schedule) optimizer_.set_learning_rate(schedule(optimizer_.steps()));
      optimizer_.zero_grad();
      begin_step();
      const auto t1 = clock::now();
      // An error on one rank only (a shape its part alone has, memory) must stop every rank
      // at the same point: errors are caught, counted with the loss, and thrown together.
      Failure failure;
      double local[4] = {0.0, 0.0, static_cast<double>(shard.size()), 0.0};  // loss·n, correct, n, failures
      if (!shard.empty()) try {
          data::gather(data, shard, x, y);
          const Tensor<T> logits = model_.forward(x);
          const double l = loss.forward(logits, y, static_cast<T>(static_cast<double>(shard.size()) / n_global));
          local[0] = l * static_cast<double>(shard.size());
          local[1] = static_cast<double>(convkit::detail::count_correct(logits, y));
        } catch (const std::exception& e) {
          failure.record(e);
          local[3] = 1.0;
        }
      const auto t2 = clock::now();
      double total[4];
      detail::mpi_check(MPI_Allreduce(local, total, 4, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
      if (total[3] > 0.0) {
        in_step_ = false;
        raise(failure, "forward", b);
      }
      const double l = total[0] / static_cast<double>(n_global);
      if (!std::isfinite(l)) {
        in_step_ = false;
        convkit::detail::throw_bad_loss(l, b, optimizer_.steps() + 1, optimizer_.learning_rate());
      }
      const auto t3 = clock::now();
      if (!shard.empty()) try {
          model_.backward(loss.backward());
        } catch (const std::exception& e) {
          failure.record(e);
        }
      const auto t4 = clock::now();
      finish_step(failure, b);  // every rank: the same sums started and waited for
      const auto t5 = clock::now();
      optimizer_.step();
      const Index correct = static_cast<Index>(total[1]);
      loss_sum += total[0];
      correct_sum += correct;
      stats.images += n_global;
      ++timing_.steps;
      timing_.compute += seconds(t1, t2) + seconds(t3, t4);
      timing_.reduce_wait += seconds(t4, t5);
      timing_.other += seconds(t0, t1) + seconds(t2, t3) + seconds(t5, clock::now());
      if (on_batch) on_batch(n_global, l, correct);
    }
    stats.loss = stats.images ? loss_sum / static_cast<double>(stats.images) : 0.0;
    stats.accuracy = stats.images ? static_cast<double>(correct_sum) / static_cast<double>(stats.images) : 0.0;
    average_buffers();
    check_replicas("after an epoch");
    return stats;
  }

  /// convkit::evaluate over `data`, each rank taking a contiguous part; the losses and
  /// confusion matrices are summed, so every rank returns the result for all of `data`.
  EvalStats evaluate(const data::Dataset<T>& data, Index batch_size = 256) {
    check_same({data.size(), data.images.numel(), data.num_classes}, "the evaluation data (images, scalars, classes)");
    const Index lo = data.size() * rank_ / size_, hi = data.size() * (rank_ + 1) / size_;
    auto [loss_sum, confusion] = convkit::detail::evaluate_range(model_, data, lo, hi, batch_size);
    double total_loss = 0.0;
    detail::mpi_check(MPI_Allreduce(&loss_sum, &total_loss, 1, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce");
    std::vector<Index>& counts = confusion.counts();
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, counts.data(), static_cast<int>(counts.size()),
                                    detail::mpi_type<std::int64_t>(), MPI_SUM, comm_),
                      "MPI_Allreduce");
    EvalStats s;
    s.loss = data.size() ? total_loss / static_cast<double>(data.size()) : 0.0;
    s.confusion = std::move(confusion);
    return s;
  }

  /// convkit::save_training_state, written by rank 0 alone (atomically), with every other
  /// rank's Dropout streams ("distributed.rank<r>.rng.layer.<path>") so that a resume with as
  /// many ranks continues exactly. Collective.
  /// @throws IoError on every rank if rank 0 could not write the file (rank 0 its own error).
  void save_training_state(const std::string& path, long long epoch, const Rng& rng,
                           const std::map<std::string, std::string>& meta = {}) {
    const auto layer_rngs = convkit::detail::layer_rngs(model_);
    std::string mine;
    for (const auto& [key, r] : layer_rngs) mine += r->state() + '\n';
    const std::vector<std::string> states = detail::allgather_strings(comm_, mine);
    std::string error;
    if (is_root()) {
      try {
        Checkpoint<T> c = training_state(model_, optimizer_, epoch, rng, meta);
        c.put_text("distributed.ranks", std::to_string(size_));
        for (int r = 1; r < size_; ++r) {
          std::istringstream lines(states[static_cast<std::size_t>(r)]);
          std::string line;
          for (const auto& [key, unused] : layer_rngs) {
            (void)unused;
            std::getline(lines, line);
            c.put_text("distributed.rank" + std::to_string(r) + "." + key, line);
          }
        }
        c.save(path);
      } catch (const std::exception& e) {  // any, or the other ranks would wait forever
        error = e.what();
      }
    }
    const std::string root_error = broadcast_string(error);
    if (!root_error.empty()) {
      CONVKIT_CHECK(!is_root(), IoError, root_error);
      CONVKIT_CHECK(false, IoError, "rank 0 could not save the checkpoint: " << root_error);
    }
  }

  /// convkit::load_training_state: rank 0 reads the file and sends its bytes to every rank
  /// (the other hosts need no copy of it), each rank restores from them. Returns the epochs
  /// done. Collective.
  /// @throws IoError/FormatError on every rank, as convkit::load_training_state.
  long long load_training_state(const std::string& path, Rng& rng) {
    std::vector<std::uint8_t> bytes;
    std::string error;
    if (is_root()) {
      try {
        bytes = convkit::detail::read_file(path, "checkpoint");
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    const std::string root_error = broadcast_string(error);
    CONVKIT_CHECK(root_error.empty(), IoError, root_error);
    std::uint64_t n = bytes.size();
    detail::mpi_check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm_), "MPI_Bcast");
    bytes.resize(static_cast<std::size_t>(n));
    detail::broadcast_bytes(comm_, bytes.data(), bytes.size(), 0);
    const Checkpoint<T> c = Checkpoint<T>::from_bytes(bytes, path);
    const long long epoch = convkit::load_training_state(c, path, model_, optimizer_, rng);
    const bool same_ranks = c.has_text("distributed.ranks") && c.text("distributed.ranks") == std::to_string(size_);
    if (rank_ > 0)
      for (auto& [key, r] : convkit::detail::layer_rngs(model_)) {
        const std::string own = "distributed.rank" + std::to_string(rank_) + "." + key;
        if (same_ranks && c.has_text(own))
          r->set_state(c.text(own));
        else
          r->seed(detail::rank_seed(r->state(), rank_));
      }
    check_replicas("after loading a checkpoint");
    return epoch;
  }

  /// Replaces every buffer (batch-norm running statistics) by its mean over the ranks,
  /// computed on rank 0 and sent to all, so every rank holds the same values. Collective.
  void average_buffers() {
    for (const NamedParameter<T>& p : model_.named_parameters()) {
      if (p.param->trainable) continue;
      Tensor<T>& v = p.param->value;
      CONVKIT_CHECK(v.numel() <= INT_MAX, ValueError,
                    "DataParallel: buffer " << p.name << " has " << v.numel() << " scalars; MPI counts stop at " << INT_MAX);
      const int n = static_cast<int>(v.numel());
      detail::mpi_check(MPI_Reduce(is_root() ? MPI_IN_PLACE : v.data(), v.data(), n, detail::mpi_type<T>(), MPI_SUM,
                                   0, comm_),
                        "MPI_Reduce");
      if (is_root())
        for (T& e : v) e /= static_cast<T>(size_);
      detail::mpi_check(MPI_Bcast(v.data(), n, detail::mpi_type<T>(), 0, comm_), "MPI_Bcast");
    }
  }

  /// Checks that every rank holds bit for bit the same parameters and buffers. Collective.
  /// @throws StateError on every rank if they differ (`when` says when it was checked).
  void check_replicas(const char* when) {
    std::uint64_t h = 14695981039346656037ull;
    for (const NamedParameter<T>& p : model_.named_parameters())
      h = detail::fnv1a(p.param->value.data(), static_cast<std::size_t>(p.param->value.numel()) * sizeof(T), h);
    std::uint64_t lo = 0, hi = 0;
    detail::mpi_check(MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, comm_), "MPI_Allreduce");
    detail::mpi_check(MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, comm_), "MPI_Allreduce");
    CONVKIT_CHECK(lo == hi, StateError,
                  "DataParallel: the ranks' parameters differ " << when
                      << " (rank " << rank_ << "'s hash " << std::hex << h << ", others' range " << lo << " to "
                      << hi << std::dec << "); the replicas are no longer one model");
  }

 private:
  struct Bucket {
    std::vector<std::size_t> members;  // indices into slots_
    std::vector<T> buffer;
    MPI_Request request = MPI_REQUEST_NULL;
    std::size_t pending = 0;
  };
  struct Slot {
    Parameter<T>* param;
    std::size_t bucket;
    Index offset;
    bool ready;     // its layer's backward ran in this step
    bool had_grad;  // its gradient existed before the bucket started (else zeros were sent)
  };

  /// An exception this rank caught in a step, to be thrown once every rank knows.
  struct Failure {
    std::exception_ptr error;
    std::string text;
    void record(const std::exception& e) {
      error = std::current_exception();
      text = e.what();
    }
  };

  /// Collective, when some rank failed: the failed rank rethrows its own exception, the
  /// others a convkit::Error quoting the first failed rank's message.
  [[noreturn]] void raise(const Failure& failure, const char* phase, Index batch) {
    const std::vector<std::string> all = detail::allgather_strings(comm_, failure.error ? "!" + failure.text : "");
    if (failure.error) std::rethrow_exception(failure.error);
    int r = 0;
    while (r + 1 < size_ && all[static_cast<std::size_t>(r)].empty()) ++r;
    convkit::detail::throw_with_message<Error>([&](std::ostream& os) {
      os << "DataParallel: rank " << r << " failed in " << phase << " at batch " << batch
         << " of the epoch: " << all[static_cast<std::size_t>(r)].substr(1);
    });
  }

  /// Rank 0's string on every rank.
  std::string broadcast_string(const std::string& s) {
    std::uint64_t n = s.size();
    detail::mpi_check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm_), "MPI_Bcast");
    std::string out = is_root() ? s : std::string(static_cast<std::size_t>(n), '\0');
    detail::broadcast_bytes(comm_, out.data(), out.size(), 0);
    return out;
  }

  /// Throws ValueError on every rank unless every rank passed the same values.
  void check_same(std::vector<std::int64_t> values, const char* what) {
    const int n = static_cast<int>(values.size());
    std::vector<std::int64_t> all(values.size() * static_cast<std::size_t>(size_));
    detail::mpi_check(MPI_Allgather(values.data(), n, MPI_INT64_T, all.data(), n, MPI_INT64_T, comm_), "MPI_Allgather");
    for (int r = 1; r < size_; ++r)
      if (!std::equal(all.begin(), all.begin() + n, all.begin() + r * n)) {
        const auto list = [&](int rank) {
          std::ostringstream os;
          for (int i = 0; i < n; ++i) os << (i ? ", " : "") << all[static_cast<std::size_t>(rank * n + i)];
          return os.str();
        };
        CONVKIT_CHECK(false, ValueError,
                      "DataParallel: the ranks disagree on " << what << ": rank 0 has (" << list(0) << "), rank " << r
                                                             << " has (" << list(r) << ")");
      }
  }

  /// The model's, optimiser's and options' descriptions must be equal on every rank.
  void check_agreement() {
    std::ostringstream model;
    Index tensors = 0;
    for (const NamedParameter<T>& p : model_.named_parameters()) {
      model << p.name << ' ' << p.param->value.shape() << (p.param->trainable ? "" : " buffer") << '\n';
      ++tensors;
    }
    std::ostringstream optim;
    optim.precision(17);
    for (const auto& [name, tensor] : optimizer_.state()) optim << name << ' ' << tensor->shape() << '\n';
    optim << "learning rate " << optimizer_.learning_rate() << ", steps " << optimizer_.steps() << ", trainable "
          << optimizer_.parameters().size();
    check_same({static_cast<std::int64_t>(sizeof(T)), model_.parameter_count(), model_.buffer_count(), tensors,
                static_cast<std::int64_t>(detail::fnv1a(model.str()) >> 1)},
               "the model (bytes per scalar, trainable parameters, buffer scalars, tensors, hash of names and shapes)");
    check_same({static_cast<std::int64_t>(detail::fnv1a(optim.str()) >> 1),
                static_cast<std::int64_t>(options_.bucket_bytes_), options_.overlap_ ? 1 : 0},
               "the optimiser (hash of its state, learning rate and step count) or the bucket options");
    const std::vector<std::string> prints = detail::allgather_strings(comm_, options_.fingerprint_);
    for (int r = 1; r < size_; ++r)
      CONVKIT_CHECK(prints[static_cast<std::size_t>(r)] == prints[0], ValueError,
                    "DataParallel: the ranks disagree on the options: rank 0 has '"
                        << prints[0] << "', rank " << r << " has '" << prints[static_cast<std::size_t>(r)] << "'");
  }

  /// Rank 0's parameters, buffers and optimiser state on every rank.
  void broadcast_state() {
    std::vector<Tensor<T>*> tensors;
    for (const NamedParameter<T>& p : model_.named_parameters()) tensors.push_back(&p.param->value);
    for (const auto& [name, tensor] : optimizer_.state()) tensors.push_back(tensor);
    for (Tensor<T>* t : tensors)
      detail::broadcast_bytes(comm_, t->data(), static_cast<std::size_t>(t->numel()) * sizeof(T), 0);
  }

  /// Buckets of the trainable parameters, last first (the order backward completes them),
  /// and a backward hook on each layer that owns some of them.
  void build_buckets() {
    std::unordered_map<const Parameter<T>*, std::size_t> slot_of;
    const auto& params = optimizer_.parameters();
    // At most INT_MAX scalars a bucket: MPI counts are ints.
    const std::size_t cap = std::min<std::size_t>(std::max<std::size_t>(1, options_.bucket_bytes_ / sizeof(T)), INT_MAX);
    for (std::size_t i = params.size(); i-- > 0;) {
      Parameter<T>* p = params[i].param;
      const std::size_t n = static_cast<std::size_t>(p->value.numel());
      if (buckets_.empty() || (buckets_.back().buffer.size() > 0 && buckets_.back().buffer.size() + n > cap))
        buckets_.emplace_back();
      CONVKIT_CHECK(n <= static_cast<std::size_t>(INT_MAX), ValueError,
                    "DataParallel: parameter " << params[i].name << " has " << n << " scalars; MPI counts stop at "
                                               << INT_MAX);
      Bucket& b = buckets_.back();
      slot_of[p] = slots_.size();
      b.members.push_back(slots_.size());
      slots_.push_back(Slot{p, buckets_.size() - 1, static_cast<Index>(b.buffer.size()), false, false});
      b.buffer.resize(b.buffer.size() + n);
    }
    if (!options_.overlap_) return;
    // A layer's own parameters: its named_parameters less its children's.
    for_each_layer(model_, [&](const std::string&, Layer<T>& layer) {
      std::vector<const Parameter<T>*> in_children;
      layer.visit_children([&](const std::string&, Layer<T>& child) {
        for (Parameter<T>* p : child.parameters()) in_children.push_back(p);
      });
      std::vector<std::size_t> own;
      for (Parameter<T>* p : layer.parameters()) {
        const auto hit = slot_of.find(p);
        if (hit != slot_of.end() && std::find(in_children.begin(), in_children.end(), p) == in_children.end())
          own.push_back(hit->second);
      }
      if (own.empty()) return;
      layer.set_backward_hook([this, own](Layer<T>&) { on_backward(own); });
      hooked_.push_back(&layer);
    });
  }

  void begin_step() {
    reused_ = false;
    for (Slot& s : slots_) s.ready = s.had_grad = false;
    for (Bucket& b : buckets_) b.pending = b.members.size();
    next_bucket_ = 0;
    in_step_ = true;
  }

  /// A layer's backward has completed the gradients of `own` (slot indices).
  void on_backward(const std::vector<std::size_t>& own) {
    if (!in_step_) return;  // a backward outside train_epoch (a user's gradient check)
    for (std::size_t i : own) {
      Slot& s = slots_[i];
      if (s.ready) {  // reported by finish_step, on every rank
        reused_ = true;
        continue;
      }
      s.ready = true;
      --buckets_[s.bucket].pending;
    }
    while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) start_bucket(next_bucket_++);
    // Open MPI advances non-blocking collectives inside MPI calls: give it one.
    if (next_bucket_ > 0) {
      int done = 0;
      std::vector<MPI_Request> requests;
      for (std::size_t k = 0; k < next_bucket_; ++k) requests.push_back(buckets_[k].request);
      MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (done)
        for (std::size_t k = 0; k < next_bucket_; ++k) buckets_[k].request = MPI_REQUEST_NULL;
    }
  }

  void start_bucket(std::size_t k) {
    Bucket& b = buckets_[k];
    for (std::size_t i : b.members) {
      slots_[i].had_grad = slots_[i].param->has_grad();
      const Tensor<T>& g = slots_[i].param->ensure_grad();
      std::copy(g.begin(), g.end(), b.buffer.begin() + slots_[i].offset);
    }
    if (options_.overlap_)
      detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()),
                                       detail::mpi_type<T>(), MPI_SUM, comm_, &b.request),
                        "MPI_Iallreduce");
    else  // after backward: the blocking call, whose algorithms MPI tunes more than the non-blocking ones
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()),
                                      detail::mpi_type<T>(), MPI_SUM, comm_),
                        "MPI_Allreduce");
    ++timing_.reductions;
    timing_.bytes += static_cast<double>(b.buffer.size() * sizeof(T));
  }

  /// Starts the buckets backward did not (all of them without overlap, or a rank with no
  /// images in this batch), waits for every sum and puts them into the gradients. Then one
  /// small sum of flags: whether some rank failed in backward or saw a parameter get two
  /// gradients (shared weights), and which parameters no rank's backward reached (they
  /// keep no gradient, so the optimiser skips them, as in one process).
  void finish_step(const Failure& failure, Index batch) {
    in_step_ = false;
    while (next_bucket_ < buckets_.size()) start_bucket(next_bucket_++);
    std::vector<MPI_Request> requests;
    for (Bucket& b : buckets_) requests.push_back(b.request);
    detail::mpi_check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
                      "MPI_Waitall");
    for (Bucket& b : buckets_) {
      b.request = MPI_REQUEST_NULL;
      for (std::size_t i : b.members) {
        Tensor<T>& g = slots_[i].param->grad;
        const auto first = b.buffer.begin() + slots_[i].offset;
        std::copy(first, first + g.numel(), g.begin());
      }
    }
    std::vector<int> flags(2 + slots_.size());
    flags[0] = failure.error ? 1 : 0;
    flags[1] = reused_ ? 1 : 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) flags[2 + i] = slots_[i].had_grad ? 1 : 0;
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, flags.data(), static_cast<int>(flags.size()), MPI_INT, MPI_MAX, comm_),
                      "MPI_Allreduce");
    if (flags[0]) raise(failure, "backward", batch);
    CONVKIT_CHECK(!flags[1], StateError,
                  "DataParallel: a parameter got a second gradient in one step (a layer run twice per step, "
                  "shared weights); use DataParallelOptions().overlap(false)");
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (!flags[2 + i]) slots_[i].param->grad = Tensor<T>();
  }

  Layer<T>& model_;
  Optimizer<T>& optimizer_;
  DataParallelOptions options_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<Layer<T>*> hooked_;
  std::size_t next_bucket_ = 0;
  bool in_step_ = false, reused_ = false;
  DataParallelTiming timing_;
};

}  // namespace convkit::distributed
