// rescnn/backend/cuda/memory.hpp — DeviceTraits<Cuda>: how Tensor<T, Cuda>
// gets, frees and copies its memory.
//
// - allocate/deallocate go through the caching allocator (allocator.hpp).
// - copy_from_host, copy_within and zero are queued on the compute stream;
//   the host may reuse its buffer as soon as copy_from_host returns.
// - copy_to_host waits for the compute stream, so the values are final.
// - upload (Tensor::to<Cuda>() from the CPU) is asynchronous: the bytes go
//   into a pinned staging buffer, travel on the copy stream, and the compute
//   stream waits on an event for them, so a batch crosses the bus while the
//   previous one computes.
#pragma once

#include <cstring>
#include <mutex>

#include "rescnn/backend/cuda/allocator.hpp"
#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/core/device.hpp"

namespace rescnn {
namespace cuda::detail {

// A ring of pinned host buffers for uploads. A slot is reused only after the
// copy out of it has finished (its event), which for a ring of four is
// normally long past.
class PinnedStaging {
 public:
  static PinnedStaging& instance() {
    static PinnedStaging* staging = new PinnedStaging();  // leaked: see context.hpp
    return *staging;
  }

  void upload(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    Context& ctx = context();
    std::lock_guard lock(mutex_);
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % kSlots;
    if (!slot.copied)
      RESCNN_CUDA_CHECK(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming));
    else
      RESCNN_CUDA_CHECK(cudaEventSynchronize(slot.copied));
    if (slot.capacity < bytes) {
      if (slot.host) RESCNN_CUDA_CHECK(cudaFreeHost(slot.host));
      slot.host = nullptr;
      slot.capacity = 0;
      RESCNN_CUDA_CHECK(cudaMallocHost(&slot.host, bytes));
      slot.capacity = bytes;
    }
    std::memcpy(slot.host, src, bytes);
    RESCNN_CUDA_CHECK(cudaMemcpyAsync(dst, slot.host, bytes, cudaMemcpyHostToDevice, ctx.copy_stream()));
    RESCNN_CUDA_CHECK(cudaEventRecord(slot.copied, ctx.copy_stream()));
    RESCNN_CUDA_CHECK(cudaStreamWaitEvent(ctx.compute_stream(), slot.copied, 0));
  }

 private:
  static constexpr int kSlots = 4;
  struct Slot {
    void* host = nullptr;
    std::size_t capacity = 0;
    cudaEvent_t copied = nullptr;
  };
  PinnedStaging() = default;
  std::mutex mutex_;
  Slot slots_[kSlots];
  int next_ = 0;
};

}  // namespace cuda::detail

template <>
struct DeviceTraits<Cuda> {
  static void* allocate(std::size_t bytes) { return cuda::CachingAllocator::instance().allocate(bytes); }
  static void* allocate_for_upload(std::size_t bytes) {
    return cuda::CachingAllocator::instance().allocate_for_upload(bytes);
  }
  static void deallocate(void* p) noexcept { cuda::CachingAllocator::instance().deallocate(p); }

  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    // From pageable memory the call returns once `src` has been staged, so
    // the caller may free it; the device write is ordered on the stream.
    if (bytes)
      RESCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda::context().compute_stream()));
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    const cudaStream_t stream = cuda::context().compute_stream();
    RESCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
    RESCNN_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  static void copy_within(void* dst, const void* src, std::size_t bytes) {
    if (bytes)
      RESCNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::context().compute_stream()));
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) RESCNN_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda::context().compute_stream()));
  }
  static void upload(void* dst, const void* src, std::size_t bytes) {
    cuda::detail::PinnedStaging::instance().upload(dst, src, bytes);
  }
};

}  // namespace rescnn
