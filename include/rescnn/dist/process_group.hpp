// rescnn/dist/process_group.hpp — the collectives data-parallel training
// needs, over whatever transport carries them (MPI for host memory,
// dist/mpi.hpp; NCCL for CUDA memory, dist/nccl.hpp), and the one-process
// group every program has.
//
// Ordering guarantee: a group executes its collectives in the order they
// are called on the rank (one FIFO per group, run by one thread); every
// rank must call the same collectives in the same order, and rescnn's own
// callers do (DistributedDataParallel starts its buckets strictly in bucket
// order, whatever order their gradients complete in).
//
// A collective that waits longer than the group's timeout for its peers
// (RESCNN_DIST_TIMEOUT seconds, 300 by default) stops the whole job with a
// message naming this rank and the collective, never a silent hang; a rank
// that fails calls abort_job(), which names it and stops the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "rescnn/core/error.hpp"

namespace rescnn::dist {

// A collective failed, timed out, or the group cannot be used as asked
// (built without MPI, a world size that does not match a checkpoint).
class DistError : public Error {
 public:
  using Error::Error;
};

enum class DType { f32, f64, i64 };

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else {
    static_assert(std::is_same_v<T, std::int64_t>, "rescnn::dist: collectives take float, double or int64");
    return DType::i64;
  }
}

inline std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }

// Where a group's buffers live.
enum class MemoryKind { host, cuda };

// A collective in flight; wait() returns once its result is in the buffer
// (and rethrows its failure). Waiting twice is allowed.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "mpi", "nccl"
  virtual MemoryKind memory() const = 0;

  // Sums `count` elements at `data` over all ranks, in place, and returns at
  // once; the buffer must stay alive and untouched until wait() returns.
  virtual std::shared_ptr<Work> allreduce_sum_async(void* data, std::size_t count, DType type) = 0;
  // Copies `count` elements from rank `root` into every rank's buffer.
  virtual void broadcast(void* data, std::size_t count, DType type, int root) = 0;
  // Concatenates every rank's `count` elements, in rank order, into `out`
  // (size() * count elements).
  virtual void allgather(const void* in, void* out, std::size_t count, DType type) = 0;
  virtual void barrier() = 0;

  // Stops every rank of the job: prints "rescnn::dist: rank R of N failed:
  // <reason>" and exits non-zero (MPI_Abort under MPI). For a rank whose
  // work failed, so that its peers do not wait for it until the timeout.
  [[noreturn]] virtual void abort_job(const std::string& reason) {
    std::cerr << "rescnn::dist: rank " << rank() << " of " << size() << " failed: " << reason << std::endl;
    std::_Exit(1);
  }

  // Typed conveniences.
  template <class T>
  void allreduce_sum(std::span<T> data) {
    allreduce_sum_async(data.data(), data.size(), dtype_of<std::remove_const_t<T>>())->wait();
  }
  template <class T>
  T allreduce_sum(T value) {
    allreduce_sum(std::span<T>(&value, 1));
    return value;
  }
  template <class T>
  void broadcast(std::span<T> data, int root = 0) {
    broadcast(data.data(), data.size(), dtype_of<T>(), root);
  }

  bool is_main() const { return rank() == 0; }
};

// The world of one process: every collective is the identity.
class LocalProcessGroup final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  MemoryKind memory() const override { return MemoryKind::host; }

  std::shared_ptr<Work> allreduce_sum_async(void*, std::size_t, DType) override {
    struct Done final : Work {
      void wait() override {}
    };
    return std::make_shared<Done>();
  }
  void broadcast(void*, std::size_t, DType, int root) override { check_root(root); }
  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    if (count > 0) std::memcpy(out, in, count * dtype_size(type));
  }
  void barrier() override {}

 private:
  void check_root(int root) const {
    check<DistError>(root == 0, "broadcast: root rank ", root, " does not exist in a world of 1 process");
  }
};

// The timeout of a group's collectives: RESCNN_DIST_TIMEOUT (seconds, a
// positive number) or 300.
inline double collective_timeout_seconds() {
  const char* env = std::getenv("RESCNN_DIST_TIMEOUT");
  if (env == nullptr || *env == '\0') return 300;
  char* end = nullptr;
  const double s = std::strtod(env, &end);
  check<DistError>(end != env && *end == '\0' && s > 0 && s < 1e9, "RESCNN_DIST_TIMEOUT='", env,
                   "' is not a positive number of seconds");
  return s;
}

}  // namespace rescnn::dist
