// rescnn/backend/cuda/allocator.hpp — a caching allocator for device memory.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds, so a training step must not call them: freed blocks go to a
// cache and the next request of (about) the same size takes one from there.
// After the first step of a training run every tensor size has been seen and
// `stats().device_allocations` stops growing; a test checks exactly that.
//
// Reuse is safe without synchronising because all compute is ordered on one
// stream (context.hpp): a block freed by the host is reused by work issued
// later on the same stream, which runs after the work that used it. Blocks
// for host-to-device uploads are written on the copy stream instead, so they
// live in their own pool and carry an event recorded on the compute stream
// when they were freed; the copy stream waits for that event before reusing
// one (the previous batch's readers are done).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"

namespace rescnn::cuda {

struct MemoryStats {
  std::size_t allocated_bytes = 0;       // held by live tensors (rounded sizes)
  std::size_t peak_allocated_bytes = 0;  // the most allocated_bytes has been
  std::size_t reserved_bytes = 0;        // obtained from cudaMalloc: live + cached
  std::int64_t device_allocations = 0;   // cudaMalloc calls so far
  std::int64_t cache_hits = 0;           // requests served from the cache
};

class CachingAllocator {
 public:
  static CachingAllocator& instance() {
    static CachingAllocator* allocator = new CachingAllocator();  // leaked: see context.hpp
    return *allocator;
  }

  void* allocate(std::size_t bytes) { return acquire(bytes, Pool::Compute); }

  // For a tensor the copy stream will fill: the copy stream is made to wait
  // until the block's previous readers on the compute stream have finished.
  void* allocate_for_upload(std::size_t bytes) { return acquire(bytes, Pool::Upload); }

  void deallocate(void* p) noexcept {
    if (!p) return;
    std::lock_guard lock(mutex_);
    auto it = blocks_.find(p);
    if (it == blocks_.end()) return;  // not ours: nothing sensible to do in a destructor
    Block& b = it->second;
    b.in_use = false;
    stats_.allocated_bytes -= b.size;
    if (b.pool == Pool::Upload) {
      // Ignored failure: a destructor cannot throw, and a broken context
      // fails loudly at the next checked call anyway.
      if (!b.released && cudaEventCreateWithFlags(&b.released, cudaEventDisableTiming) != cudaSuccess)
        b.released = nullptr;
      if (b.released) (void)cudaEventRecord(b.released, context().compute_stream());
    }
    free_lists_[static_cast<int>(b.pool)].emplace(b.size, p);
  }

  // Returns every cached (free) block to the driver.
  void empty_cache() {
    std::lock_guard lock(mutex_);
    release_cached();
  }

  MemoryStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  enum class Pool { Compute = 0, Upload = 1 };
  struct Block {
    std::size_t size = 0;
    Pool pool = Pool::Compute;
    bool in_use = false;
    cudaEvent_t released = nullptr;  // upload pool: compute-stream event at the last free
  };

  static constexpr std::size_t kSmall = std::size_t{1} << 20;  // 1 MiB
  static constexpr std::size_t kSmallRound = 512;
  static constexpr std::size_t kLargeRound = std::size_t{1} << 20;

  // Small requests round to 512 bytes and reuse only an exact size; large ones
  // round to 1 MiB and may take a cached block up to a quarter larger, which
  // bounds the waste while letting nearby sizes share.
  static std::size_t rounded(std::size_t bytes) {
    const std::size_t unit = bytes <= kSmall ? kSmallRound : kLargeRound;
    return (bytes + unit - 1) / unit * unit;
  }

  void* acquire(std::size_t bytes, Pool pool) {
    if (bytes == 0) return nullptr;
    Context& ctx = context();
    const std::size_t size = rounded(bytes);
    std::lock_guard lock(mutex_);
    auto& free_list = free_lists_[static_cast<int>(pool)];
    auto it = free_list.lower_bound(size);
    const std::size_t limit = size <= kSmall ? size : size + size / 4;
    void* p = nullptr;
    if (it != free_list.end() && it->first <= limit) {
      p = it->second;
      free_list.erase(it);
      ++stats_.cache_hits;
    } else {
      p = device_malloc(size);
      blocks_[p] = Block{size, pool, false, nullptr};
      stats_.reserved_bytes += size;
    }
    Block& b = blocks_[p];
    b.in_use = true;
    stats_.allocated_bytes += b.size;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    if (pool == Pool::Upload && b.released) RESCNN_CUDA_CHECK(cudaStreamWaitEvent(ctx.copy_stream(), b.released, 0));
    return p;
  }

  // cudaMalloc; on failure the cache is released and the request retried once.
  void* device_malloc(std::size_t size) {
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached();
      status = cudaMalloc(&p, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      std::size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      throw CudaOutOfMemory(rescnn::detail::concat(
          "CUDA out of memory: tried to allocate ", mib(size), " MiB on device ", context().device(), " (",
          mib(free_bytes), " MiB free of ", mib(total_bytes), " MiB; rescnn holds ", mib(stats_.allocated_bytes),
          " MiB in tensors and ", mib(stats_.reserved_bytes - stats_.allocated_bytes), " MiB cached)"));
    }
    RESCNN_CUDA_CHECK(status);
    ++stats_.device_allocations;
    return p;
  }

  void release_cached() {
    for (auto& free_list : free_lists_) {
      for (auto& [size, p] : free_list) {
        Block& b = blocks_[p];
        if (b.released) (void)cudaEventDestroy(b.released);
        (void)cudaFree(p);  // synchronises: pending readers are done
        stats_.reserved_bytes -= size;
        blocks_.erase(p);
      }
      free_list.clear();
    }
  }

  static std::string mib(std::size_t bytes) {
    return rescnn::detail::concat(static_cast<double>(bytes) / (1024.0 * 1024.0));
  }

  CachingAllocator() = default;

  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::multimap<std::size_t, void*> free_lists_[2];
  MemoryStats stats_;
};

inline MemoryStats memory_stats() { return CachingAllocator::instance().stats(); }
inline void reset_peak_memory_stats() { CachingAllocator::instance().reset_peak(); }
inline void empty_cache() { CachingAllocator::instance().empty_cache(); }

}  // namespace rescnn::cuda
