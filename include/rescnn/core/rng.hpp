// rescnn/core/rng.hpp — a small, seedable, platform-independent generator.
//
// std::normal_distribution differs between standard libraries, so
// initialisation and shuffling would not be reproducible across compilers. We
// use xoshiro256** (seeded through splitmix64) and our own transforms, so the
// same seed gives the same numbers everywhere. The state is four 64-bit words
// and can be saved and restored (checkpoints resume bit for bit).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace rescnn {

class Generator {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Generator(std::uint64_t seed = 0) { manual_seed(seed); }

  void manual_seed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : state_) s = splitmix64(x);
    cached_normal_valid_ = false;
  }

  State state() const { return state_; }
  void set_state(const State& s) {
    state_ = s;
    cached_normal_valid_ = false;
  }

  // Uniform 64 random bits.
  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [0, n), without modulo bias (Lemire's method).
  std::uint64_t uniform_int(std::uint64_t n) {
    __extension__ using u128 = unsigned __int128;  // GCC/Clang extension; -Wpedantic-clean
    if (n == 0) return 0;
    u128 m = static_cast<u128>(next_u64()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<u128>(next_u64()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  // Standard normal by Box-Muller; the second value of each pair is kept.
  double normal() {
    if (cached_normal_valid_) {
      cached_normal_valid_ = false;
      return cached_normal_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * std::numbers::pi * u2;
    cached_normal_ = r * std::sin(theta);
    cached_normal_valid_ = true;
    return r * std::cos(theta);
  }

  double normal(double mean, double stddev) { return mean + stddev * normal(); }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  State state_{};
  double cached_normal_ = 0.0;
  bool cached_normal_valid_ = false;
};

// The process-wide generator used when no generator is passed explicitly
// (layer initialisation, factories). Seed it with manual_seed() for
// reproducible runs, as torch.manual_seed.
inline Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}

inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace rescnn
