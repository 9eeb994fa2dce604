// rescnn/backend/cuda/context.hpp — the process's GPU: device, streams,
// library handles and numeric settings.
//
// rescnn uses one GPU per process (cuda::set_device before first use picks
// which) and two streams on it: `compute`, where every kernel, cuDNN and
// cuBLAS call and device-to-device copy is issued in order, and `copy`, which
// runs host-to-device uploads so that the next batch travels while the current
// one computes (see memory.hpp). Because all compute is ordered on one stream,
// freed memory can be reused at once without synchronising (caching
// allocator), as PyTorch does per stream.
//
// The context is created on first use and deliberately never destroyed: the
// CUDA runtime tears itself down at exit in an unspecified order relative to
// static destructors, and releasing handles after that crashes.
#pragma once

#include <atomic>
#include <mutex>

#include "rescnn/backend/cuda/check.hpp"

namespace rescnn::cuda {

// Numeric modes, as torch.backends: TF32 tensor cores for convolutions are on
// by default (torch.backends.cudnn.allow_tf32 = True) and off for matrix
// multiplies (torch.backends.cuda.matmul.allow_tf32 = False). Equivalence
// tests with CPU results turn both off.
struct MathSettings {
  bool conv_tf32 = true;
  bool matmul_tf32 = false;
};

namespace detail {

inline std::atomic<int>& requested_device() {
  static std::atomic<int> device{0};
  return device;
}

inline MathSettings& math_settings() {
  static MathSettings settings;
  return settings;
}

}  // namespace detail

// Number of CUDA devices; 0 when there is none or no driver (never throws).
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

inline bool is_available() noexcept { return device_count() > 0; }

class Context {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  cudaStream_t compute_stream() const { return compute_; }
  cudaStream_t copy_stream() const { return copy_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  const cudaDeviceProp& properties() const { return props_; }

  // Blocks until everything issued so far has finished.
  void synchronize() const { RESCNN_CUDA_CHECK(cudaStreamSynchronize(compute_)); }

  static Context& get() {
    // Leaked on purpose (see the top of this file).
    static Context* context = new Context(detail::requested_device().load());
    return *context;
  }

 private:
  explicit Context(int device) : device_(device) {
    const int count = device_count();
    check<CudaError>(count > 0, "CUDA: no CUDA device is available (cudaGetDeviceCount found none); this program "
                                "was built with the CUDA backend but needs a GPU to use Tensor<T, Cuda>");
    check<CudaError>(device >= 0 && device < count, "CUDA: device ", device, " was requested but only ", count,
                     " device(s) exist");
    RESCNN_CUDA_CHECK(cudaSetDevice(device));
    RESCNN_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
    RESCNN_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
    RESCNN_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    RESCNN_CUDNN_CHECK(cudnnCreate(&cudnn_));
    RESCNN_CUDNN_CHECK(cudnnSetStream(cudnn_, compute_));
    RESCNN_CUBLAS_CHECK(cublasCreate(&cublas_));
    RESCNN_CUBLAS_CHECK(cublasSetStream(cublas_, compute_));
  }

  int device_;
  cudaDeviceProp props_{};
  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

inline Context& context() { return Context::get(); }

// Chooses the GPU; only before the first use of the backend.
inline void set_device(int device) {
  detail::requested_device().store(device);
  check<CudaError>(context().device() == device, "cuda::set_device(", device,
                   "): the CUDA backend is already running on device ", context().device(),
                   "; choose the device before the first CUDA tensor is made");
}

inline const MathSettings& math_settings() { return detail::math_settings(); }
inline void set_math_settings(const MathSettings& s) { detail::math_settings() = s; }
// Both TF32 switches at once (false: full fp32 everywhere).
inline void set_allow_tf32(bool allow) { detail::math_settings() = {allow, allow}; }

// Waits for all queued GPU work (for timing and before reading results).
inline void synchronize() { context().synchronize(); }

}  // namespace rescnn::cuda
