// rescnn/backend/cpu/allocator.hpp — host memory for tensors, with a cache
// for large blocks.
//
// glibc serves allocations above its mmap threshold (at most 32 MiB) with a
// fresh mmap and returns them with munmap, so a training step that allocates
// and frees the same 75 MB activation every time pays a page fault for every
// 4 KiB page of it, every step (a tenth of a 96x96 ResNet-18 step on two
// cores, measured with perf). Blocks of kCacheMin bytes or more therefore
// go to a free list when released and are reused by the next request of
// (about) the same size: after the first step, training asks the kernel for
// no memory. Smaller blocks use plain aligned_alloc, which glibc recycles
// itself. cpu::empty_cache() returns the cached blocks to the system.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#include "rescnn/core/error.hpp"

namespace rescnn::cpu {

struct HostMemoryStats {
  std::size_t cached_bytes = 0;         // free blocks held for reuse
  std::size_t in_use_bytes = 0;         // large blocks held by live tensors
  std::int64_t system_allocations = 0;  // large blocks obtained from the system
  std::int64_t cache_hits = 0;          // large requests served from the cache
};

class HostAllocator {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kCacheMin = std::size_t{1} << 20;  // 1 MiB
  static constexpr std::size_t kRound = std::size_t{1} << 16;     // 64 KiB

  static HostAllocator& instance() {
    static HostAllocator* allocator = new HostAllocator();  // never destroyed: tensors may outlive statics
    return *allocator;
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes < kCacheMin) return system_allocate((bytes + kAlignment - 1) / kAlignment * kAlignment, bytes);
    const std::size_t size = (bytes + kRound - 1) / kRound * kRound;
    {
      std::lock_guard lock(mutex_);
      // A cached block at most a quarter larger: nearby sizes share blocks,
      // and the waste stays bounded.
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / 4) {
        void* p = it->second;
        stats_.cached_bytes -= it->first;
        stats_.in_use_bytes += it->first;
        ++stats_.cache_hits;
        free_.erase(it);
        return p;
      }
    }
    void* p = system_allocate(size, bytes);
    std::lock_guard lock(mutex_);
    large_[p] = size;
    stats_.in_use_bytes += size;
    ++stats_.system_allocations;
    return p;
  }

  void deallocate(void* p) noexcept {
    if (!p) return;
    {
      std::lock_guard lock(mutex_);
      auto it = large_.find(p);
      if (it != large_.end()) {
        stats_.in_use_bytes -= it->second;
        stats_.cached_bytes += it->second;
        free_.emplace(it->second, p);
        return;
      }
    }
    std::free(p);
  }

  void empty_cache() {
    std::lock_guard lock(mutex_);
    for (auto& [size, p] : free_) {
      large_.erase(p);
      std::free(p);
    }
    free_.clear();
    stats_.cached_bytes = 0;
  }

  HostMemoryStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  HostAllocator() = default;

  // On failure the cache is released and the request retried once.
  void* system_allocate(std::size_t rounded, std::size_t requested) {
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) {
      empty_cache();
      p = std::aligned_alloc(kAlignment, rounded);
    }
    if (!p) throw Error(detail::concat("cpu: out of memory allocating ", requested, " bytes"));
    return p;
  }

  mutable std::mutex mutex_;
  std::unordered_map<void*, std::size_t> large_;  // every large block we own: its rounded size
  std::multimap<std::size_t, void*> free_;        // the cached ones, by size
  HostMemoryStats stats_;
};

inline HostMemoryStats host_memory_stats() { return HostAllocator::instance().stats(); }
// Returns the cached blocks to the system (for a long-lived process between phases).
inline void empty_cache() { HostAllocator::instance().empty_cache(); }

}  // namespace rescnn::cpu
