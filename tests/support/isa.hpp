// tests/support/isa.hpp — running a piece of a test at each CPU level.
//
//   for (const cpu::Isa level : testing::float_levels())
//     DYNAMIC_SECTION("isa=" << cpu::isa_name(level)) {
//       const testing::ScopedIsa forced(level);
//       ...
//     }
//
// so a machine with AVX-512 also tests the AVX2 and generic kernels.
#pragma once

#include <catch2/catch.hpp>

#include <vector>

#include "rescnn/backend/cpu/float_kernels.hpp"

namespace rescnn::testing {

// The levels with distinct float kernels that this CPU can run: generic,
// avx2, avx512 (avx512_bf16 runs avx512's float kernels).
inline std::vector<cpu::Isa> float_levels() {
  std::vector<cpu::Isa> levels;
  for (const cpu::Isa level : {cpu::Isa::generic, cpu::Isa::avx2, cpu::Isa::avx512})
    if (level <= cpu::cpu_supported_isa()) levels.push_back(level);
  return levels;
}

// Caps the level for its lifetime and restores the previous one, also when a
// REQUIRE throws out of the scope. The level must really be the one that
// runs: a test binary compiled with -march beyond it (RESCNN_NATIVE=ON)
// cannot compile it (isa.hpp), and then fails here rather than testing
// another level under its name.
class ScopedIsa {
 public:
  explicit ScopedIsa(cpu::Isa level) : saved_(cpu::set_max_isa(level)) {
    INFO("the float kernels of " << cpu::isa_name(level) << " are not compiled in this binary (built with -march "
                                 << "beyond that level?)");
    REQUIRE(cpu::float_kernel_level() == level);
  }
  ~ScopedIsa() { cpu::set_max_isa(saved_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  cpu::Isa saved_;
};

}  // namespace rescnn::testing
