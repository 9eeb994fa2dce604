// Generator: reproducibility, state save/restore, ranges.
#include <catch2/catch.hpp>

#include "rescnn/core/rng.hpp"

using namespace rescnn;

TEST_CASE("The same seed gives the same stream and the state round-trips", "[rng]") {
  Generator a(7), b(7);
  for (int i = 0; i < 100; ++i) REQUIRE(a.next_u64() == b.next_u64());
  const auto state = a.state();
  const double first = a.uniform();
  a.set_state(state);
  CHECK(a.uniform() == first);
}

TEST_CASE("The stream is fixed across platforms (known first values)", "[rng]") {
  // xoshiro256** seeded through splitmix64(0): a change to the algorithm would
  // silently change every initialisation, so the first outputs are pinned.
  Generator g(0);
  const std::uint64_t first = g.next_u64();
  Generator h(0);
  CHECK(h.next_u64() == first);
  CHECK(first == 0x99ec5f36cb75f2b4ULL);
}

TEST_CASE("uniform_int covers its range without bias", "[rng]") {
  Generator g(3);
  int counts[5] = {};
  for (int i = 0; i < 50000; ++i) {
    const auto v = g.uniform_int(5);
    REQUIRE(v < 5);
    ++counts[v];
  }
  for (int c : counts) CHECK(c == Approx(10000).margin(500));  // 5.6 sigma
}
