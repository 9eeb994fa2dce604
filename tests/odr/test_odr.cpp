// tests/odr/test_odr.cpp — one program, three translation units compiled
// with different -march flags (none, x86-64-v3, native), all calling the
// same rescnn kernels through the same run-time dispatch.
//
// Before run-time dispatch, each unit compiled its own body of the same
// inline kernel and the linker kept one of them (an ODR violation). Now a
// level's kernels are compiled with that level's exact features in every
// unit that compiles it (backend/cpu/isa.hpp), so every unit must compute
// the same bits at the same level.
#include <catch2/catch.hpp>

#include <vector>

#include "rescnn/backend/cpu/isa.hpp"
#include "support/compare.hpp"
#include "support/isa.hpp"

namespace rescnn::odr {
std::vector<float> unit_baseline(cpu::Isa level, cpu::Isa* level_used);
std::vector<float> unit_x86_64_v3(cpu::Isa level, cpu::Isa* level_used);
std::vector<float> unit_native(cpu::Isa level, cpu::Isa* level_used);
}  // namespace rescnn::odr

using namespace rescnn;

using testing::count_differences;

TEST_CASE("Units compiled with and without -march=x86-64-v3 compute the same bits at every vector level",
          "[odr][isa]") {
  for (const cpu::Isa level : testing::float_levels()) DYNAMIC_SECTION("isa=" << cpu::isa_name(level)) {
      cpu::Isa used_baseline{}, used_v3{};
      const auto baseline = odr::unit_baseline(level, &used_baseline);
      const auto v3 = odr::unit_x86_64_v3(level, &used_v3);
      // Both units compile every level (x86-64-v3 is within avx2's features).
      CHECK(used_baseline == level);
      CHECK(used_v3 == level);
      // The generic level is Eigen compiled with each unit's flags (SSE2 here,
      // AVX2 there): it rounds differently, as Eigen does in any program
      // (README: "CPU kernels"). The vector levels must agree bit for bit.
      if (level == cpu::Isa::generic) continue;
      const std::size_t differ = count_differences(baseline, v3);
      INFO(differ << " of " << baseline.size() << " values differ");
      CHECK(differ == 0);
    }
}

TEST_CASE("A unit compiled with -march=native computes the same bits as one without", "[odr][isa]") {
  // A unit built for this CPU compiles only the levels at or above its own
  // flags (here the float kernels under the avx512_bf16 target, on an
  // AVX-512 machine); at the CPU's own level it must agree with the unit
  // built without flags.
  cpu::Isa used_baseline{}, used_native{};
  const auto baseline = odr::unit_baseline(cpu::Isa::avx512_bf16, &used_baseline);
  const auto native = odr::unit_native(cpu::Isa::avx512_bf16, &used_native);
  INFO("baseline unit ran " << cpu::isa_name(used_baseline) << ", native unit " << cpu::isa_name(used_native));
  if (used_baseline == cpu::Isa::generic || used_native == cpu::Isa::generic) {
    // Eigen's GEMM compiled for different vector widths rounds differently.
    CHECK(used_baseline == used_native);
    return;
  }
  const std::size_t differ = count_differences(baseline, native);
  INFO(differ << " of " << baseline.size() << " values differ");
  CHECK(differ == 0);
}
