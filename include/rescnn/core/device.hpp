// rescnn/core/device.hpp — device tags and their allocators.
//
// A device is a type, not a runtime value: `Tensor<float, Cpu>` and
// `Tensor<float, Cuda>` are different types, so the backend is chosen at
// compile time and mixing devices is a compile error rather than a crash.
// A new backend adds a tag and a specialisation of DeviceTraits.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

#include "rescnn/backend/cpu/allocator.hpp"
#include "rescnn/core/config.hpp"
#include "rescnn/core/error.hpp"

namespace rescnn {

struct Cpu {
  static constexpr std::string_view name = "cpu";
};

// An NVIDIA GPU through CUDA, cuDNN and cuBLAS. The tag always exists so that
// code can name it; its DeviceTraits (and so any Tensor<T, Cuda>) exist only
// in translation units built with the CUDA backend (see core/config.hpp).
struct Cuda {
  static constexpr std::string_view name = "cuda";
};

template <class D>
struct DeviceTraits;  // specialised per device: allocate / deallocate

// Host memory: 64-byte aligned (one cache line, one AVX-512 register), so
// kernels may use aligned vector loads on the start of every tensor. Large
// blocks are cached for reuse (backend/cpu/allocator.hpp).
template <>
struct DeviceTraits<Cpu> {
  static constexpr std::size_t alignment = cpu::HostAllocator::kAlignment;

  static void* allocate(std::size_t bytes) { return cpu::HostAllocator::instance().allocate(bytes); }
  static void deallocate(void* p) noexcept { cpu::HostAllocator::instance().deallocate(p); }
  // Memory that a host-to-device upload will fill (Tensor::to); on the host
  // it is ordinary memory.
  static void* allocate_for_upload(std::size_t bytes) { return allocate(bytes); }
  static void upload(void* dst, const void* src, std::size_t bytes) { copy_from_host(dst, src, bytes); }

  // Byte copies between this device and the host, and within the device.
  // A GPU backend implements the same four with its own copy engine.
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy_within(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) std::memset(dst, 0, bytes);
  }
};

template <class D>
inline constexpr bool is_cpu_v = std::is_same_v<D, Cpu>;
template <class D>
inline constexpr bool is_cuda_v = std::is_same_v<D, Cuda>;

}  // namespace rescnn

// The CUDA backend's DeviceTraits<Cuda>, where it is compiled in.
#if RESCNN_WITH_CUDA
#include "rescnn/backend/cuda/memory.hpp"
#endif
