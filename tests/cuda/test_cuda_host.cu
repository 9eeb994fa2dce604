// The CUDA backend's host-side logic, checked without a GPU: these tests run
// wherever the CUDA variant builds (CI has no GPU), unlike test_cuda_*.cu's
// equivalence tests, which skip there.
//  - whether the GPU tests run, skip or fail (RESCNN_REQUIRE_GPU);
//  - which cuDNN algorithm is chosen from its candidates, under which math
//    type, and what the error says when none qualifies;
//  - when BatchNorm's kernels may count in 32 bits.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda/gpu_requirement.hpp"
#include "rescnn/backend/cuda/conv_algorithm.hpp"
#include "rescnn/backend/cuda/index_width.hpp"

using namespace rescnn;
using namespace rescnn::cuda::detail;
namespace ct = rescnn::cuda_testing;

// ---- RESCNN_REQUIRE_GPU ------------------------------------------------------

TEST_CASE("Without a usable GPU the CUDA tests skip, or fail naming the CUDA error when one is required",
          "[cuda-host][gpu-requirement]") {
  const cuda::DeviceQuery gpu{.count = 1, .error = cudaSuccess};
  const cuda::DeviceQuery none{.count = 0, .error = cudaErrorNoDevice};
  const cuda::DeviceQuery bad_driver{.count = 0, .error = cudaErrorInsufficientDriver};
  const cuda::DeviceQuery zero{.count = 0, .error = cudaSuccess};

  CHECK(ct::decide_gpu(gpu, nullptr).verdict == ct::GpuVerdict::kRun);
  CHECK(ct::decide_gpu(gpu, "1").verdict == ct::GpuVerdict::kRun);

  for (const auto* q : {&none, &bad_driver, &zero}) {
    INFO(q->reason());
    const auto skip = ct::decide_gpu(*q, nullptr);
    CHECK(skip.verdict == ct::GpuVerdict::kSkip);
    CHECK(skip.message.rfind("SKIPPED: ", 0) == 0);
    CHECK(ct::decide_gpu(*q, "").verdict == ct::GpuVerdict::kSkip);
    CHECK(ct::decide_gpu(*q, "0").verdict == ct::GpuVerdict::kSkip);
    const auto fail = ct::decide_gpu(*q, "1");
    CHECK(fail.verdict == ct::GpuVerdict::kFail);
    CHECK(fail.message.rfind("FAILED: RESCNN_REQUIRE_GPU=1 but no CUDA device can be used", 0) == 0);
  }
  // The runtime's own name for the error is in both messages.
  CHECK_THAT(ct::decide_gpu(bad_driver, "1").message, Catch::Contains("cudaErrorInsufficientDriver"));
  CHECK_THAT(ct::decide_gpu(bad_driver, nullptr).message, Catch::Contains("cudaErrorInsufficientDriver"));
  CHECK_THAT(ct::decide_gpu(zero, "yes").message, Catch::Contains("0 device(s)"));
}

// ---- cuDNN algorithm choice --------------------------------------------------

namespace {

// A made-up cudnnConvolutionFwdAlgoPerf_t.
cudnnConvolutionFwdAlgoPerf_t perf(cudnnConvolutionFwdAlgo_t algo, cudnnStatus_t status, std::size_t memory,
                                   cudnnMathType_t math, cudnnDeterminism_t det = CUDNN_DETERMINISTIC) {
  cudnnConvolutionFwdAlgoPerf_t p{};
  p.algo = algo;
  p.status = status;
  p.time = 1;
  p.memory = memory;
  p.determinism = det;
  p.mathType = math;
  return p;
}

Choice<cudnnConvolutionFwdAlgo_t> pick_fwd(const std::vector<cudnnConvolutionFwdAlgoPerf_t>& r,
                                           const AlgoConstraints& c, cudnnMathType_t searched) {
  return pick<cudnnConvolutionFwdAlgo_t>(r.data(), static_cast<int>(r.size()), c, searched);
}

std::string explain(const std::vector<cudnnConvolutionFwdAlgoPerf_t>& r, const AlgoConstraints& c) {
  return explain_no_algorithm("forward", "float input (2, 3, 8, 8)", r.data(), static_cast<int>(r.size()), c);
}

constexpr auto kGemm = CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
constexpr auto kImplicit = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
constexpr auto kWinograd = CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
constexpr auto kFft = CUDNN_CONVOLUTION_FWD_ALGO_FFT;

}  // namespace

TEST_CASE("The math type a pass is searched under is the one its choice runs under", "[cuda-host][conv]") {
  // float without TF32: FMA both ways, even when cuDNN reports DEFAULT.
  CHECK(search_math(CUDNN_DATA_FLOAT, false) == CUDNN_FMA_MATH);
  CHECK(run_math(perf(kGemm, CUDNN_STATUS_SUCCESS, 0, CUDNN_DEFAULT_MATH), CUDNN_FMA_MATH) == CUDNN_FMA_MATH);
  // float with TF32, and double: DEFAULT searched, the reported math type run.
  CHECK(search_math(CUDNN_DATA_FLOAT, true) == CUDNN_DEFAULT_MATH);
  CHECK(search_math(CUDNN_DATA_DOUBLE, false) == CUDNN_DEFAULT_MATH);
  CHECK(search_math(CUDNN_DATA_DOUBLE, true) == CUDNN_DEFAULT_MATH);
  CHECK(run_math(perf(kGemm, CUDNN_STATUS_SUCCESS, 0, CUDNN_DEFAULT_MATH), CUDNN_DEFAULT_MATH) == CUDNN_DEFAULT_MATH);
  CHECK(run_math(perf(kGemm, CUDNN_STATUS_SUCCESS, 0, CUDNN_TENSOR_OP_MATH), CUDNN_DEFAULT_MATH) ==
        CUDNN_TENSOR_OP_MATH);

  // A double choice runs under the math type it was timed with, not FMA.
  const AlgoConstraints dbl{.allow_tensor_ops = true, .deterministic = false, .workspace_limit = 1 << 20};
  const auto c = pick_fwd({perf(kImplicit, CUDNN_STATUS_SUCCESS, 0, CUDNN_DEFAULT_MATH)}, dbl,
                          search_math(CUDNN_DATA_DOUBLE, false));
  REQUIRE(c.tuned);
  CHECK(c.math == CUDNN_DEFAULT_MATH);

  // bf16 and fp16 (autocast): tensor cores searched, the reported math type
  // run, and a tensor-op choice accepted (allow_tensor_ops, as plan() sets).
  CHECK(search_math(CUDNN_DATA_BFLOAT16, false) == CUDNN_TENSOR_OP_MATH);
  CHECK(search_math(CUDNN_DATA_HALF, false) == CUDNN_TENSOR_OP_MATH);
  const AlgoConstraints half{.allow_tensor_ops = true, .deterministic = false, .workspace_limit = 1 << 20};
  const auto h = pick_fwd({perf(kImplicit, CUDNN_STATUS_SUCCESS, 0, CUDNN_TENSOR_OP_MATH)}, half,
                          search_math(CUDNN_DATA_HALF, false));
  REQUIRE(h.tuned);
  CHECK(h.math == CUDNN_TENSOR_OP_MATH);
}

TEST_CASE("The first candidate that meets every constraint is chosen", "[cuda-host][conv]") {
  const AlgoConstraints fp32{.allow_tensor_ops = false, .deterministic = false, .workspace_limit = 1000};
  const std::vector<cudnnConvolutionFwdAlgoPerf_t> results{
      perf(kFft, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DEFAULT_MATH),
      perf(kWinograd, CUDNN_STATUS_SUCCESS, 0, CUDNN_TENSOR_OP_MATH),  // tensor cores
      perf(kGemm, CUDNN_STATUS_SUCCESS, 5000, CUDNN_DEFAULT_MATH),     // too much workspace
      perf(kImplicit, CUDNN_STATUS_SUCCESS, 1000, CUDNN_DEFAULT_MATH, CUDNN_NON_DETERMINISTIC),
      perf(kGemm, CUDNN_STATUS_SUCCESS, 10, CUDNN_DEFAULT_MATH)};
  SECTION("default mode: the fastest that fits, without tensor cores") {
    const auto c = pick_fwd(results, fp32, CUDNN_FMA_MATH);
    REQUIRE(c.tuned);
    CHECK(c.algo == kImplicit);
    CHECK(c.workspace == 1000);  // exactly the limit is allowed
    CHECK(c.math == CUDNN_FMA_MATH);
    CHECK(c.determinism == CUDNN_NON_DETERMINISTIC);
  }
  SECTION("deterministic mode skips the non-deterministic one") {
    auto d = fp32;
    d.deterministic = true;
    const auto c = pick_fwd(results, d, CUDNN_FMA_MATH);
    REQUIRE(c.tuned);
    CHECK(c.algo == kGemm);
    CHECK(c.workspace == 10);
    CHECK(c.determinism == CUDNN_DETERMINISTIC);
  }
  SECTION("TF32 allowed: the tensor-core candidate wins and keeps its math type") {
    auto t = fp32;
    t.allow_tensor_ops = true;
    const auto c = pick_fwd(results, t, CUDNN_DEFAULT_MATH);
    REQUIRE(c.tuned);
    CHECK(c.algo == kWinograd);
    CHECK(c.math == CUDNN_TENSOR_OP_MATH);
  }
  SECTION("down-conversion to half precision is never chosen") {
    auto t = fp32;
    t.allow_tensor_ops = true;
    const auto c =
        pick_fwd({perf(kGemm, CUDNN_STATUS_SUCCESS, 0, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)}, t, CUDNN_DEFAULT_MATH);
    CHECK_FALSE(c.tuned);
  }
  SECTION("workspace limit 0 admits only algorithms that need none") {
    auto z = fp32;
    z.workspace_limit = 0;
    CHECK_FALSE(pick_fwd(results, z, CUDNN_FMA_MATH).tuned);
    auto more = results;
    more.push_back(perf(kFft, CUDNN_STATUS_SUCCESS, 0, CUDNN_DEFAULT_MATH));
    const auto c = pick_fwd(more, z, CUDNN_FMA_MATH);
    REQUIRE(c.tuned);
    CHECK(c.algo == kFft);
  }
}

TEST_CASE("When no algorithm qualifies, the error names the reason that applies", "[cuda-host][conv]") {
  const AlgoConstraints c{.allow_tensor_ops = false, .deterministic = false, .workspace_limit = 100};
  SECTION("every candidate unsupported: not blamed on the workspace") {
    const auto m = explain({perf(kGemm, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DEFAULT_MATH),
                            perf(kFft, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DEFAULT_MATH)},
                           c);
    CHECK_THAT(m, Catch::Contains("no forward algorithm for float input (2, 3, 8, 8) is supported by cuDNN"));
    CHECK_THAT(m, Catch::Contains("all 2 candidates returned CUDNN_STATUS_NOT_SUPPORTED"));
    CHECK_THAT(m, !Catch::Contains("workspace"));
  }
  SECTION("too little workspace: the limit and the smallest need") {
    const auto m = explain({perf(kGemm, CUDNN_STATUS_SUCCESS, 5000, CUDNN_DEFAULT_MATH),
                            perf(kFft, CUDNN_STATUS_SUCCESS, 300, CUDNN_DEFAULT_MATH),
                            perf(kWinograd, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DEFAULT_MATH)},
                           c);
    CHECK_THAT(m, Catch::Contains("2 need more workspace than the limit of 100 bytes (the smallest needs 300"));
    CHECK_THAT(m, Catch::Contains("set_conv_workspace_limit"));
    CHECK_THAT(m, Catch::Contains("1 are not supported or failed"));
  }
  SECTION("an allocation failure in the timed search counts as too little workspace") {
    const auto m = explain({perf(kGemm, CUDNN_STATUS_ALLOC_FAILED, 0, CUDNN_DEFAULT_MATH),
                            perf(kFft, CUDNN_STATUS_NOT_SUPPORTED, 0, CUDNN_DEFAULT_MATH)},
                           c);
    CHECK_THAT(m, Catch::Contains("1 need more workspace than the limit of 100 bytes (raise the limit"));
    CHECK_THAT(m, !Catch::Contains("is supported by cuDNN"));
  }
  SECTION("deterministic mode and TF32 off are named") {
    auto d = c;
    d.deterministic = true;
    const auto m = explain({perf(kGemm, CUDNN_STATUS_SUCCESS, 0, CUDNN_DEFAULT_MATH, CUDNN_NON_DETERMINISTIC),
                            perf(kFft, CUDNN_STATUS_SUCCESS, 0, CUDNN_TENSOR_OP_MATH)},
                           d);
    CHECK_THAT(m, Catch::Contains("1 are not deterministic"));
    CHECK_THAT(m, Catch::Contains("1 use tensor cores, which TF32 off"));
    CHECK_THAT(m, !Catch::Contains("workspace than"));
  }
  SECTION("no candidates at all") { CHECK_THAT(explain({}, c), Catch::Contains("cuDNN offered no candidates")); }
}

// ---- 32-bit indices ------------------------------------------------------------

namespace {

// Runs `for (I e = first; e < n; e += stride)` on the host and reports
// whether it ended within the iterations a correct loop needs.
template <class I>
bool loop_terminates(std::uint64_t n, std::uint64_t first, std::uint64_t stride) {
  const std::uint64_t needed = n / stride + 2;
  std::uint64_t iterations = 0;
  for (I e = static_cast<I>(first); e < static_cast<I>(n); e = static_cast<I>(e + static_cast<I>(stride)))
    if (++iterations > needed) return false;
  return true;
}

}  // namespace

TEST_CASE("Kernels count in 32 bits only when the step past the last element cannot wrap", "[cuda-host][batchnorm]") {
  constexpr std::uint64_t kU32 = std::numeric_limits<std::uint32_t>::max();
  const index_t stride = 132 * 32 * 256;  // an H200's largest grid-stride: 132 SMs x 32 blocks x 256 threads
  CHECK(fits_uint32_loop(0, stride));
  CHECK(fits_uint32_loop(1000, stride));
  CHECK(fits_uint32_loop(static_cast<index_t>(kU32) - stride, stride));
  CHECK_FALSE(fits_uint32_loop(static_cast<index_t>(kU32) - stride + 1, stride));
  CHECK_FALSE(fits_uint32_loop(static_cast<index_t>(kU32), stride));
  CHECK_FALSE(fits_uint32_loop(static_cast<index_t>(kU32) + 1, 1));
  CHECK_FALSE(fits_uint32_loop(-1, stride));

  // The old rule (n <= 2^32 - 1) allowed n within one stride of 2^32, where
  // the last thread's loop wraps and never ends; the new rule refuses that n.
  const std::uint64_t n_near = kU32 - 1000;
  const std::uint64_t last_thread = static_cast<std::uint64_t>(stride) - 1;
  CHECK_FALSE(loop_terminates<std::uint32_t>(n_near, last_thread, static_cast<std::uint64_t>(stride)));
  CHECK_FALSE(fits_uint32_loop(static_cast<index_t>(n_near), stride));
  CHECK(loop_terminates<std::uint64_t>(n_near, last_thread, static_cast<std::uint64_t>(stride)));
  // At the largest n the rule allows, every thread's 32-bit loop ends.
  const std::uint64_t n_max = kU32 - static_cast<std::uint64_t>(stride);
  for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1}, last_thread / 2, last_thread})
    CHECK(loop_terminates<std::uint32_t>(n_max, first, static_cast<std::uint64_t>(stride)));
}
