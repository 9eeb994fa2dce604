// tests/cuda/cuda_main.cu — Catch2's main() for the CUDA equivalence tests,
// compiled once and linked into every tests/cuda/test_cuda_*.cu executable.
//
// Without a usable GPU the tests cannot run, and they must not pass as if
// they had: main() prints one "SKIPPED: ..." line naming the CUDA error and
// returns 77, which ctest (SKIP_RETURN_CODE 77) reports as skipped, not
// passed; with RESCNN_REQUIRE_GPU=1 it fails instead (gpu_requirement.hpp).
// With a GPU it names the device, turns TF32 off (the tests compare with
// full-fp32 CPU results, and TF32 keeps only 10 mantissa bits; the cases
// that test TF32 turn it on themselves, with a tolerance to match), and runs
// Catch with "no tests ran" and "no assertions" counted as failures, so that
// neither a filter matching nothing nor a case checking nothing can pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cuda/gpu_requirement.hpp"
#include "rescnn/backend/cuda/context.hpp"

namespace {

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE for these tests

}  // namespace

int main(int argc, char* argv[]) {
  namespace ct = rescnn::cuda_testing;
  const auto decision = ct::decide_gpu(rescnn::cuda::query_devices(), std::getenv("RESCNN_REQUIRE_GPU"));
  if (decision.verdict != ct::GpuVerdict::kRun) {
    std::printf("%s\n", decision.message.c_str());
    std::fflush(stdout);
    return decision.verdict == ct::GpuVerdict::kSkip ? kSkipped : 1;
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
  // A filter that matches nothing, or a case that asserts nothing, fails.
  session.configData().warnings =
      static_cast<Catch::WarnAbout::What>(Catch::WarnAbout::NoTests | Catch::WarnAbout::NoAssertions);
  const int result = session.run(argc, argv);
  // Catch returns the number of failed assertions; exactly 77 of them must
  // not read as "skipped".
  return result == kSkipped ? 1 : result;
}
