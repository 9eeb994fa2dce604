// rescnn/backend/cpu/scratch.hpp — reusable per-thread working memory.
//
// im2col matrices and other temporaries are large and needed on every step;
// allocating them each time costs page faults. A scratch buffer grows to the
// largest size asked and is then reused, so steady-state training allocates
// nothing here.
#pragma once

#include <cstddef>
#include <memory>

#include "rescnn/core/device.hpp"

namespace rescnn::cpu {

class ScratchBuffer {
 public:
  // A pointer to at least `count` elements of T, valid until the next call
  // with the same slot on this thread. Contents are unspecified.
  template <class T>
  T* get(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes > capacity_) {
      memory_.reset(static_cast<std::byte*>(DeviceTraits<Cpu>::allocate(bytes)));
      capacity_ = bytes;
    }
    return reinterpret_cast<T*>(memory_.get());
  }

 private:
  struct Free {
    void operator()(std::byte* p) const noexcept { DeviceTraits<Cpu>::deallocate(p); }
  };
  std::unique_ptr<std::byte, Free> memory_;
  std::size_t capacity_ = 0;
};

// Named slots so that two temporaries alive at once do not share memory.
enum class Scratch {
  kColumns,
  kGathered,
  kGemmA,
  kGemmB,
  kGemmShared,
  kWinogradWeights,
  kWinogradInput,
  kWinogradProducts,
  kBatchNorm0,  // the small-plane BatchNorm kernels' per-position double sums
  kBatchNorm1,
  kBatchNorm2,
  kBatchNorm3,
  kBatchNorm4,
  kBatchNormScale,  // and their per-position affine maps
  kBatchNormShift,
  kCount
};

inline ScratchBuffer& scratch(Scratch slot) {
  thread_local ScratchBuffer buffers[static_cast<int>(Scratch::kCount)];
  return buffers[static_cast<int>(slot)];
}

}  // namespace rescnn::cpu
