// tests/cuda/cuda_main.cu — Catch2's main() for the CUDA equivalence tests,
// compiled once and linked into every tests/cuda/test_cuda_*.cu executable.
//
// Without a usable GPU the tests cannot run, and they must not pass as if
// they had: main() prints one "SKIPPED: ..." line and returns 77, which ctest
// (SKIP_RETURN_CODE 77) reports as skipped, not passed. With a GPU it names
// the device, turns TF32 off (the tests compare with full-fp32 CPU results,
// and TF32 keeps only 10 mantissa bits), and runs Catch with "no tests ran"
// counted as a failure, so that a filter matching nothing cannot pass either.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>
#include <exception>
#include <string>

#include "rescnn/backend/cuda/context.hpp"

namespace {

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE for these tests

// Why there is no device, in the runtime's own words where it gave some.
std::string no_device_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (status != cudaSuccess)
    return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
  return "cudaGetDeviceCount found " + std::to_string(count) + " devices";
}

}  // namespace

int main(int argc, char* argv[]) {
  if (!rescnn::cuda::is_available()) {
    std::printf("SKIPPED: no CUDA device on this machine (%s)\n", no_device_reason().c_str());
    std::fflush(stdout);
    return kSkipped;
  }
  try {
    const auto& props = rescnn::cuda::context().properties();
    std::printf("CUDA device %d: %s (compute capability %d.%d, %.1f GiB); TF32 off for CPU equivalence\n",
                rescnn::cuda::context().device(), props.name, props.major, props.minor,
                static_cast<double>(props.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    std::fflush(stdout);
  } catch (const std::exception& e) {
    // A device exists but cannot be used: that is a failure, not a skip.
    std::printf("FAILED: the CUDA backend could not start: %s\n", e.what());
    return 1;
  }
  rescnn::cuda::set_allow_tf32(false);

  Catch::Session session;
  session.configData().warnings = Catch::WarnAbout::NoTests;
  const int result = session.run(argc, argv);
  // Catch returns the number of failed assertions; exactly 77 of them must
  // not read as "skipped".
  return result == kSkipped ? 1 : result;
}
