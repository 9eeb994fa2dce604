// rescnn/backend/cuda/check.hpp — every CUDA, cuDNN and cuBLAS call is checked.
//
//   RESCNN_CUDA_CHECK(cudaMemcpyAsync(...));
//   RESCNN_CUDNN_CHECK(cudnnConvolutionForward(...));
//   RESCNN_CUBLAS_CHECK(cublasSgemm(...));
//
// A failure throws CudaError whose message holds the API's own error name and
// text, the call as written, and the file and line where it was made.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

#include "rescnn/core/error.hpp"

namespace rescnn {

// A CUDA, cuDNN or cuBLAS call failed.
class CudaError : public Error {
 public:
  using Error::Error;
};

// The device could not provide the memory asked for; the message says how
// much was asked and how much is free.
class CudaOutOfMemory : public CudaError {
 public:
  using CudaError::CudaError;
};

namespace cuda::detail {

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

[[noreturn]] inline void throw_api_error(const char* api, const std::string& error, const char* call, const char* file,
                                         int line) {
  throw CudaError(rescnn::detail::concat(api, " error: ", error, "\n  in ", call, "\n  at ", file, ":", line));
}

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear the sticky-free error so later calls are not blamed for it
  throw_api_error("CUDA", rescnn::detail::concat(cudaGetErrorName(status), ": ", cudaGetErrorString(status)), call,
                  file, line);
}

inline void check_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  std::string text = cudnnGetErrorString(status);
  // cuDNN 9 keeps a more specific message of the last failure.
  char detail[1024] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  if (detail[0]) text += rescnn::detail::concat(" (", detail, ")");
  throw_api_error("cuDNN", text, call, file, line);
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw_api_error("cuBLAS", rescnn::detail::concat(cublas_status_name(status), ": ", cublasGetStatusString(status)),
                  call, file, line);
}

}  // namespace cuda::detail
}  // namespace rescnn

#define RESCNN_CUDA_CHECK(call) ::rescnn::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define RESCNN_CUDNN_CHECK(call) ::rescnn::cuda::detail::check_cudnn((call), #call, __FILE__, __LINE__)
#define RESCNN_CUBLAS_CHECK(call) ::rescnn::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration where it happened.
#define RESCNN_CUDA_CHECK_LAUNCH() RESCNN_CUDA_CHECK(cudaGetLastError())
