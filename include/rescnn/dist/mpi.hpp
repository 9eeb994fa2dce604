// rescnn/dist/mpi.hpp — a ProcessGroup over MPI, for tensors in host memory.
//
// Compiled only where RESCNN_MPI is defined (CMake: -DRESCNN_MPI=ON links
// MPI::MPI_CXX and defines it); elsewhere make_mpi_group() throws "built
// without MPI", so the library stays header-only and MPI-free for everyone
// who does not ask for it.
//
// One worker thread per group runs its collectives, in the order they were
// called (the FIFO ordering process_group.hpp promises), as non-blocking MPI
// operations polled to completion. So a bucket's allreduce progresses while
// the caller's thread computes the rest of backward, and a collective whose
// peers never arrive is noticed: after the timeout the worker prints which
// rank waited in which collective and calls MPI_Abort, which stops every
// rank of the job (mpirun reports it and exits non-zero).
//
// MPI is initialised with MPI_THREAD_MULTIPLE (the worker calls MPI; the
// caller's thread may call MPI_Abort while it does) unless the program
// initialised it already, and finalised by the group that initialised it.
#pragma once

#include <memory>
#include <string>

#include "rescnn/dist/process_group.hpp"

#ifdef RESCNN_MPI
#include <mpi.h>

#include <limits>

#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#endif

namespace rescnn::dist {

#ifdef RESCNN_MPI

class MpiProcessGroup final : public ProcessGroup {
 public:
  explicit MpiProcessGroup(double timeout_seconds = collective_timeout_seconds()) : timeout_(timeout_seconds) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    int provided = 0;
    if (!initialized) {
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    } else {
      MPI_Query_thread(&provided);
    }
    // The worker thread polls MPI while the caller's thread may call
    // MPI_Abort (abort_job) or create and free another group's communicator.
    check<DistError>(provided >= MPI_THREAD_MULTIPLE, "MPI: thread level ", provided,
                     " was provided; rescnn's collective thread needs MPI_THREAD_MULTIPLE",
                     initialized ? " (the program initialised MPI itself: use MPI_Init_thread with it)" : "");
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    worker_ = std::thread([this] { run_worker(); });
  }

  ~MpiProcessGroup() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }
  MpiProcessGroup(const MpiProcessGroup&) = delete;
  MpiProcessGroup& operator=(const MpiProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  MemoryKind memory() const override { return MemoryKind::host; }
  double timeout_seconds() const { return timeout_; }

  std::shared_ptr<Work> allreduce_sum_async(void* data, std::size_t count, DType type) override {
    return enqueue("allreduce", [=, this](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, data, to_int(count), mpi_type(type), MPI_SUM, comm_, r);
    });
  }
  void broadcast(void* data, std::size_t count, DType type, int root) override {
    check<DistError>(root >= 0 && root < size_, "broadcast: root rank ", root, " does not exist in a world of ", size_,
                     " processes");
    enqueue("broadcast", [=, this](MPI_Request* r) {
      return MPI_Ibcast(data, to_int(count), mpi_type(type), root, comm_, r);
    })->wait();
  }
  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    enqueue("allgather", [=, this](MPI_Request* r) {
      return MPI_Iallgather(in, to_int(count), mpi_type(type), out, to_int(count), mpi_type(type), comm_, r);
    })->wait();
  }
  void barrier() override {
    enqueue("barrier", [this](MPI_Request* r) { return MPI_Ibarrier(comm_, r); })->wait();
  }

  [[noreturn]] void abort_job(const std::string& reason) override {
    say_on_stderr("rescnn::dist: rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " failed: " + reason +
                  "; stopping all ranks");
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; if it did, still never hang
  }

 private:
  // One write of the whole line: several ranks failing at once share the
  // terminal (or mpirun's pipe), and piecewise << output interleaves there.
  static void say_on_stderr(const std::string& text) {
    const std::string line = text + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }

  using Start = std::function<int(MPI_Request*)>;

  struct Pending final : Work {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::exception_ptr failure;
    void wait() override {
      std::unique_lock lock(mutex);
      done_cv.wait(lock, [&] { return done; });
      if (failure) std::rethrow_exception(failure);
    }
    void finish(std::exception_ptr e) {
      {
        std::lock_guard lock(mutex);
        done = true;
        failure = std::move(e);
      }
      done_cv.notify_all();
    }
  };
  struct Task {
    const char* name;
    Start start;
    std::shared_ptr<Pending> work;
  };

  std::shared_ptr<Work> enqueue(const char* name, Start start) {
    auto work = std::make_shared<Pending>();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back({name, std::move(start), work});
    }
    wake_.notify_one();
    return work;
  }

  void run_worker() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping, nothing left
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      try {
        run(task);
        task.work->finish(nullptr);
      } catch (...) {
        task.work->finish(std::current_exception());
      }
    }
  }

  // Starts the collective and polls it to completion: MPI progresses a
  // non-blocking operation only inside MPI calls, so the worker tests it in
  // a tight loop at first, then every 50 us, which leaves the core to the
  // compute thread during long waits for peers.
  void run(const Task& task) {
    ++sequence_;
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(task.start(&request), task.name);
    const auto start = std::chrono::steady_clock::now();
    int done = 0;
    for (int polls = 0;; ++polls) {
      check_mpi(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      if (polls < 2000) continue;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_) {
        std::ostringstream line;
        line << "rescnn::dist: rank " << rank_ << " of " << size_ << " waited " << waited << " s in " << task.name
             << " #" << sequence_ << " for the other ranks (RESCNN_DIST_TIMEOUT=" << timeout_
             << " s): a peer failed, hangs, or issued a different collective; stopping all ranks";
        say_on_stderr(line.str());
        MPI_Abort(MPI_COMM_WORLD, 1);
        std::_Exit(1);
      }
    }
  }

  static MPI_Datatype mpi_type(DType t) {
    switch (t) {
      case DType::f32: return MPI_FLOAT;
      case DType::f64: return MPI_DOUBLE;
      case DType::i64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
  }
  static int to_int(std::size_t count) {
    check<DistError>(count <= static_cast<std::size_t>(std::numeric_limits<int>::max()), "MPI: a collective of ", count,
                     " elements exceeds MPI's int count; use smaller buckets");
    return static_cast<int>(count);
  }
  void check_mpi(int code, const char* what) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    fail<DistError>("MPI: ", what, " failed on rank ", rank_, ": ",
                    std::string(text, static_cast<std::size_t>(length)));
  }

  double timeout_;
  bool owns_mpi_ = false;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::uint64_t sequence_ = 0;  // worker thread only

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread worker_;
};

inline constexpr bool built_with_mpi = true;
inline std::shared_ptr<ProcessGroup> make_mpi_group() { return std::make_shared<MpiProcessGroup>(); }

#else

inline constexpr bool built_with_mpi = false;
inline std::shared_ptr<ProcessGroup> make_mpi_group() {
  fail<DistError>("rescnn::dist: built without MPI (configure with -DRESCNN_MPI=ON and install libopenmpi-dev)");
}

#endif

}  // namespace rescnn::dist
