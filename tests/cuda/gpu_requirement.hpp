// tests/cuda/gpu_requirement.hpp — whether the CUDA tests run, skip or fail.
//
// Without a usable GPU the CUDA tests cannot run. On a machine that has no
// GPU (a developer's laptop, CI) that is a skip, reported to ctest as such.
// On a GPU machine it is a failure: a broken driver, a runtime newer than
// the driver or device nodes hidden from a container make cudaGetDeviceCount
// fail, and a suite that turned that into "skipped" would read "100% tests
// passed" on the very machine it was meant to check. RESCNN_REQUIRE_GPU=1
// (scripts/gpu-check.sh sets it) says the machine must have one.
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

#include "rescnn/backend/cuda/context.hpp"

namespace rescnn::cuda_testing {

enum class GpuVerdict { kRun, kSkip, kFail };

struct GpuDecision {
  GpuVerdict verdict;
  std::string message;  // the line to print ("SKIPPED: ..." or "FAILED: ...")
};

// require_env: the value of RESCNN_REQUIRE_GPU, or null when unset. Any
// value but "" and "0" requires a GPU.
inline GpuDecision decide_gpu(const cuda::DeviceQuery& query, const char* require_env) {
  if (query.usable()) return {GpuVerdict::kRun, ""};
  const bool required =
      require_env != nullptr && std::strcmp(require_env, "") != 0 && std::strcmp(require_env, "0") != 0;
  if (required)
    return {GpuVerdict::kFail, "FAILED: RESCNN_REQUIRE_GPU=" + std::string(require_env) +
                                   " but no CUDA device can be used (cudaGetDeviceCount: " + query.reason() + ")"};
  return {GpuVerdict::kSkip, "SKIPPED: no CUDA device on this machine (cudaGetDeviceCount: " + query.reason() +
                                 "; set RESCNN_REQUIRE_GPU=1 to make this a failure)"};
}

}  // namespace rescnn::cuda_testing
