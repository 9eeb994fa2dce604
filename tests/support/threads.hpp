// tests/support/threads.hpp — running a piece of a test on N threads.
#pragma once

#include "rescnn/backend/cpu/parallel.hpp"

namespace rescnn::testing {

// Sets the CPU thread count for its lifetime and restores the previous one,
// also when a REQUIRE throws out of the scope.
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int threads) : saved_(get_num_threads()) { set_num_threads(threads); }
  ~ScopedNumThreads() { set_num_threads(saved_); }
  ScopedNumThreads(const ScopedNumThreads&) = delete;
  ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

 private:
  int saved_;
};

}  // namespace rescnn::testing
