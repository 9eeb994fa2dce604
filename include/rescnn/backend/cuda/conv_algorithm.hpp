// rescnn/backend/cuda/conv_algorithm.hpp — which cuDNN convolution algorithm
// runs, and under which math type.
//
// cuDNN reports its candidates for a pass (forward, backward-data,
// backward-filter) as cudnnConvolution*AlgoPerf_t records: algorithm,
// status, workspace, math type and determinism, sorted best first, timed
// (cudnnFind*Ex) or estimated (cudnnGet*_v7). This header picks one from
// such a list under the run's constraints, and says why when none qualifies.
// It calls no CUDA function: the choice is plain logic over the records, and
// tests/cuda/test_cuda_host.cu checks it on made-up records, without a GPU.
//
// The math type. A pass is searched under the math type set on the
// convolution descriptor, and the chosen algorithm must then run under the
// math type it was measured with, as PyTorch does (aten/src/ATen/native/
// cudnn/Conv_v7.cpp):
//   - float with TF32 forbidden: searched and run under CUDNN_FMA_MATH (no
//     tensor cores), whatever math type cuDNN reports for the result;
//   - float with TF32 allowed, and double: searched under CUDNN_DEFAULT_MATH
//     (TF32 tensor cores permitted for float on Ampere and later; double is
//     computed in double), run under the math type the result reports;
//   - bf16 and fp16 (autocast): searched under CUDNN_TENSOR_OP_MATH, as
//     PyTorch does for half, run under the math type the result reports.
// Each pass sets its own search math type before searching, so that the
// choice of one pass never depends on which pass ran before it.
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <sstream>
#include <string>

namespace rescnn::cuda::detail {

// What a chosen algorithm must satisfy.
struct AlgoConstraints {
  bool allow_tensor_ops = false;  // float with TF32 allowed (double: tensor ops are full precision)
  bool deterministic = false;     // cuda::set_deterministic(true)
  std::size_t workspace_limit = 0;
};

// One algorithm choice: the algorithm, its workspace and the math type it
// must run under (set on the descriptor before each call).
template <class Algo>
struct Choice {
  Algo algo{};
  std::size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  cudnnDeterminism_t determinism = CUDNN_NON_DETERMINISTIC;
  bool tuned = false;
};

// The math type a pass is searched under (see the top of the file).
inline cudnnMathType_t search_math(cudnnDataType_t type, bool tf32) {
  if (type == CUDNN_DATA_HALF || type == CUDNN_DATA_BFLOAT16) return CUDNN_TENSOR_OP_MATH;
  return type == CUDNN_DATA_FLOAT && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

// The math type a chosen result runs under.
template <class Perf>
cudnnMathType_t run_math(const Perf& p, cudnnMathType_t searched) {
  return searched == CUDNN_FMA_MATH ? CUDNN_FMA_MATH : p.mathType;
}

inline bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Why a candidate was passed over; kUsable when it was not.
enum class Rejection { kUsable, kNotSupported, kFailed, kWorkspace, kNonDeterministic, kTensorOps };

template <class Perf>
Rejection judge(const Perf& p, const AlgoConstraints& c) {
  if (p.status == CUDNN_STATUS_NOT_SUPPORTED) return Rejection::kNotSupported;
  // cudnnFind*Ex reports an algorithm whose workspace exceeds the scratch
  // it was given as an allocation failure: a workspace rejection too.
  if (p.status == CUDNN_STATUS_ALLOC_FAILED) return Rejection::kWorkspace;
  if (p.status != CUDNN_STATUS_SUCCESS) return Rejection::kFailed;
  // Down-conversion to half precision is never acceptable for float data,
  // and tensor cores at all only when TF32 is allowed.
  if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION || (!c.allow_tensor_ops && is_tensor_op(p.mathType)))
    return Rejection::kTensorOps;
  if (c.deterministic && p.determinism != CUDNN_DETERMINISTIC) return Rejection::kNonDeterministic;
  if (p.memory > c.workspace_limit) return Rejection::kWorkspace;
  return Rejection::kUsable;
}

// The message for a pass where no candidate qualified: how many were passed
// over for each reason, so that the user changes the setting that matters.
template <class Perf>
std::string explain_no_algorithm(const char* pass, const std::string& geometry, const Perf* results, int count,
                                 const AlgoConstraints& c) {
  int not_supported = 0, failed = 0, workspace = 0, nondeterministic = 0, tensor_ops = 0;
  std::size_t smallest_workspace = 0;
  for (int i = 0; i < count; ++i) {
    switch (judge(results[i], c)) {
      case Rejection::kNotSupported: ++not_supported; break;
      case Rejection::kFailed: ++failed; break;
      case Rejection::kTensorOps: ++tensor_ops; break;
      case Rejection::kNonDeterministic: ++nondeterministic; break;
      case Rejection::kWorkspace:
        // (An allocation failure may not say how much it needed.)
        if (results[i].memory > c.workspace_limit &&
            (smallest_workspace == 0 || results[i].memory < smallest_workspace))
          smallest_workspace = results[i].memory;
        ++workspace;
        break;
      case Rejection::kUsable: break;
    }
  }
  std::ostringstream os;
  os << "conv2d (cuDNN): no " << pass << " algorithm for " << geometry;
  if (count == 0) {
    os << ": cuDNN offered no candidates";
    return os.str();
  }
  if (not_supported + failed == count) {
    os << " is supported by cuDNN: all " << count << " candidates returned "
       << (failed == 0 ? "CUDNN_STATUS_NOT_SUPPORTED" : "an error") << " (" << not_supported << " not supported, "
       << failed << " failed)";
    return os.str();
  }
  os << " can run under the current settings (" << count << " candidates):";
  const char* sep = " ";
  if (workspace > 0) {
    os << sep << workspace << " need more workspace than the limit of " << c.workspace_limit << " bytes (";
    if (smallest_workspace > 0) os << "the smallest needs " << smallest_workspace << "; ";
    os << "raise the limit with rescnn::cuda::set_conv_workspace_limit)";
    sep = "; ";
  }
  if (nondeterministic > 0) {
    os << sep << nondeterministic << " are not deterministic (rescnn::cuda::set_deterministic(true) admits only "
       << "deterministic ones)";
    sep = "; ";
  }
  if (tensor_ops > 0) {
    os << sep << tensor_ops << " use tensor cores, which "
       << (c.allow_tensor_ops ? "would convert to half precision" : "TF32 off (rescnn::cuda::set_allow_tf32) forbids");
    sep = "; ";
  }
  if (not_supported + failed > 0) os << sep << not_supported + failed << " are not supported or failed";
  return os.str();
}

// The first (best) qualifying candidate as a Choice, or tuned == false.
template <class Algo, class Perf>
Choice<Algo> pick(const Perf* results, int count, const AlgoConstraints& c, cudnnMathType_t searched) {
  Choice<Algo> choice;
  for (int i = 0; i < count; ++i) {
    if (judge(results[i], c) != Rejection::kUsable) continue;
    choice.algo = results[i].algo;
    choice.workspace = results[i].memory;
    choice.math = run_math(results[i], searched);
    choice.determinism = results[i].determinism;
    choice.tuned = true;
    break;
  }
  return choice;
}

}  // namespace rescnn::cuda::detail
