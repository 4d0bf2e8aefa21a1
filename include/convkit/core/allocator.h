// convkit/core/allocator.h — 64-byte aligned storage with a per-thread cache of large blocks.
//
// Training allocates and frees the same large activation tensors every step. Handed
// straight back to malloc, blocks of a megabyte or more are often returned to the operating
// system (glibc trims the heap top and unmaps large chunks) and the next step page-faults
// them in again: measured on LeNet-5, that doubled the step time. Blocks of at least 64 KiB
// are therefore kept, per thread, in a cache keyed by size class (sizes rounded up to a
// quarter of the next power of two, so at most 25% is wasted) and handed out again; at most
// 1 GiB per thread is kept, and a thread's cache is freed when the thread ends. Smaller
// blocks go straight to std::aligned_alloc/free. The cache changes no values.
//
// std::aligned_alloc rather than the aligned operator new: an impossible request comes back
// as a null pointer, turned here into std::bad_alloc, under AddressSanitizer too (whose
// operator new aborts the process on failure even with allocator_may_return_null=1).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <unordered_map>
#include <vector>

namespace convkit::detail {

class BlockCache {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kMinCachedBytes = std::size_t{64} << 10;
  static constexpr std::size_t kMaxCachedBytes = std::size_t{1} << 30;

  /// Bytes actually reserved for a request of `bytes`: its size class when cached.
  static std::size_t size_class(std::size_t bytes) {
    if (bytes < kMinCachedBytes) return bytes;
    std::size_t pow2 = kMinCachedBytes;
    while (pow2 < bytes) pow2 <<= 1;
    const std::size_t quarter = pow2 / 8;  // classes: 4/8, 5/8, 6/8, 7/8, 8/8 of pow2
    return (bytes + quarter - 1) / quarter * quarter;
  }

  static void* allocate(std::size_t bytes) {
    const std::size_t cls = size_class(bytes);
    if (cls >= kMinCachedBytes && state() != kDestroyed) {
      BlockCache& c = local();
      auto it = c.free_.find(cls);
      if (it != c.free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.cached_bytes_ -= cls;
        return p;
      }
    }
    // aligned_alloc wants a multiple of the alignment; every cached class already is one.
    void* p = std::aligned_alloc(kAlignment, (cls + kAlignment - 1) / kAlignment * kAlignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }

  /// `bytes` must be the size passed to allocate().
  static void release(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    const std::size_t cls = size_class(bytes);
    if (cls >= kMinCachedBytes && state() != kDestroyed) {
      BlockCache& c = local();
      if (c.cached_bytes_ + cls <= kMaxCachedBytes) {
        try {
          c.free_[cls].push_back(p);
          c.cached_bytes_ += cls;
          return;
        } catch (const std::bad_alloc&) {
          // fall through: free it instead of caching it
        }
      }
    }
    std::free(p);
  }

  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

 private:
  BlockCache() { state() = kAlive; }
  ~BlockCache() {
    state() = kDestroyed;
    for (auto& bucket : free_)
      for (void* p : bucket.second) std::free(p);
  }

  static BlockCache& local() {
    thread_local BlockCache cache;
    return cache;
  }
  enum State { kUnused, kAlive, kDestroyed };
  /// Set to kDestroyed when this thread's cache is destroyed, so a tensor freed later during
  /// thread exit bypasses it. A plain thread_local int needs no destructor of its own.
  static int& state() {
    thread_local int s = kUnused;
    return s;
  }

  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
};

}  // namespace convkit::detail
