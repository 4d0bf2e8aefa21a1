// convkit/core/parallel.h — OpenMP loops for the work around the GEMMs (im2col, bias,
// activations, pooling, batch normalisation, residual sums, Tensor copies); the packed
// GEMM (ops/packed_gemm.h) runs its own threads through parallel_for_on.
//
// A loop runs on omp_get_max_threads() threads when the program is built with OpenMP, it is
// not already inside a parallel region (a caller's own threads, or a threaded GEMM), and it
// touches at least kMinParallelWork elements; otherwise it is a plain loop. Items are split
// into contiguous static shares and each item is computed by one thread exactly as the plain
// loop computes it, so results never depend on the thread count. An exception thrown by an
// item is rethrown on the calling thread after the loop (it must not leave the region).
#pragma once

#include <algorithm>
#include <exception>

#include "convkit/core/shape.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit::detail {

/// Elements of work below which a loop stays on one thread: starting and joining a parallel
/// region costs a few microseconds, about what one core takes to stream this many floats.
constexpr double kMinParallelWork = 1 << 15;

/// Threads for `work` against a threshold: all OpenMP offers from outside a parallel region
/// once the work reaches `min_work`, one otherwise (and always one without OpenMP). Each kind
/// of work has its own threshold: loops here, GEMMs (ops/gemm.h), convolution chunks
/// (ops/conv2d.h).
inline int threads_for(double work, double min_work) {
#ifdef _OPENMP
  if (work >= min_work && !omp_in_parallel()) return omp_get_max_threads();
#else
  (void)work, (void)min_work;
#endif
  return 1;
}

/// Threads a loop over `work` elements may use (see the top of this file).
inline int parallel_threads(double work) { return threads_for(work, kMinParallelWork); }

/// The calling thread's number inside a parallel region (0 outside one, or without OpenMP).
inline int thread_slot() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// fn(i) for i in [0, n) on `threads` threads (a plain loop for one thread or without
/// OpenMP), in contiguous static shares; the first exception is rethrown after the loop.
template <typename Fn>
void parallel_for_on(int threads, Index n, Fn&& fn) {
#ifdef _OPENMP
  if (threads > 1 && n > 1) {
    std::exception_ptr error;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (Index i = 0; i < n; ++i) {
      try {
        fn(i);
      } catch (...) {
#pragma omp critical(convkit_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  (void)threads;
  for (Index i = 0; i < n; ++i) fn(i);
}

/// fn(slot, i) for i in [0, n) on `threads` threads, as parallel_for_on; slot (below `threads`)
/// is the running thread's number, for its own buffers. On one thread the loop runs on the
/// caller's thread, which may be thread 1 of the caller's own parallel region: its slot is 0.
template <typename Fn>
void parallel_for_slots(int threads, Index n, Fn&& fn) {
  parallel_for_on(threads, n, [&](Index i) { fn(threads > 1 ? thread_slot() : 0, i); });
}

/// fn(i) for i in [0, n); `work` is the elements the whole loop touches.
template <typename Fn>
void parallel_for(Index n, double work, Fn&& fn) {
  parallel_for_on(n > 1 ? parallel_threads(work) : 1, n, fn);
}

/// fn(begin, end) over contiguous ranges that cover [0, n) once, on at most `threads` threads
/// (one range each): blocks of `align` elements dealt out evenly, so every range but the last
/// starts and ends on a multiple of `align`.
template <typename Fn>
void parallel_ranges_on(int threads, Index n, Index align, Fn&& fn) {
  const Index blocks = (n + align - 1) / align, parts = std::min<Index>(threads, blocks);
  if (parts <= 1) {
    fn(Index{0}, n);
    return;
  }
  parallel_for_on(static_cast<int>(parts), parts, [&](Index t) {
    fn(blocks * t / parts * align, std::min(n, blocks * (t + 1) / parts * align));
  });
}

/// fn(begin, end) over contiguous ranges that cover [0, n) once, one per thread (boundaries on
/// multiples of 16 elements, so no two threads share a cache line of floats).
template <typename Fn>
void parallel_ranges(Index n, Fn&& fn) {
  parallel_ranges_on(parallel_threads(static_cast<double>(n)), n, 16, fn);
}

/// p[0 .. n) = value, threads taking ranges as parallel_ranges gives them.
template <typename T>
void parallel_fill(T* p, Index n, T value) {
  parallel_ranges(n, [p, value](Index b, Index e) { std::fill(p + b, p + e, value); });
}

}  // namespace convkit::detail
