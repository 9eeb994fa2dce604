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
#include <string>

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

inline std::atomic<bool>& deterministic_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

}  // namespace detail

// What cudaGetDeviceCount said: the device count, and the runtime's error
// when it failed. A failure is not always "no GPU": an insufficient or
// mismatched driver, or device nodes hidden from a container, fail the same
// call, and a program that must run on a GPU (a GPU test run) has to tell
// those apart from a machine that simply has none.
struct DeviceQuery {
  int count = 0;
  cudaError_t error = cudaSuccess;

  bool usable() const { return error == cudaSuccess && count > 0; }
  // "cudaErrorInsufficientDriver: CUDA driver version is insufficient for
  // CUDA runtime version", or "0 devices".
  std::string reason() const {
    if (error != cudaSuccess) return std::string(cudaGetErrorName(error)) + ": " + cudaGetErrorString(error);
    return std::to_string(count) + " device(s)";
  }
};

inline DeviceQuery query_devices() noexcept {
  DeviceQuery q;
  q.error = cudaGetDeviceCount(&q.count);
  if (q.error != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error for later calls
    q.count = 0;
  }
  return q;
}

// Number of usable CUDA devices: 0 when there is none or the runtime cannot
// reach one (never throws); query_devices() says why.
inline int device_count() noexcept { return query_devices().count; }

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
    const DeviceQuery query = query_devices();
    const int count = query.count;
    check<CudaError>(query.usable(), "CUDA: no usable CUDA device (cudaGetDeviceCount: ", query.reason(),
                     "); this program was built with the CUDA backend but needs a GPU to use Tensor<T, Cuda>");
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

// Deterministic mode, as torch.use_deterministic_algorithms(True) with
// torch.backends.cudnn.benchmark = False. rescnn's own kernels (BatchNorm,
// pooling, loss, optimizers, element-wise) use no atomics and are always
// deterministic; cuDNN's convolution algorithms are not: some backward
// algorithms add partial sums with atomics, and the default choice, timed by
// cudnnFind*Ex, can differ between processes. With this on, a convolution
// chooses by cuDNN's heuristics (cudnnGet*Algorithm_v7, no timing) among the
// algorithms cuDNN reports as deterministic, so that the same program on the
// same GPU, driver and cuDNN repeats bit for bit, across processes too.
// The price: the heuristic's choice may be slower than the timed one, and the
// fastest backward-filter algorithms are excluded. Applies to every
// convolution after the call (the algorithm cache is keyed on the setting).
inline void set_deterministic(bool on) { detail::deterministic_flag().store(on); }
inline bool deterministic() { return detail::deterministic_flag().load(); }

// Waits for all queued GPU work (for timing and before reading results).
inline void synchronize() { context().synchronize(); }

}  // namespace rescnn::cuda
