// rescnn/dist/nccl.hpp — a ProcessGroup over NCCL, for tensors in CUDA
// memory (one GPU per rank).
//
// Compiled where RESCNN_NCCL and RESCNN_CUDA are defined (CMake:
// -DRESCNN_CUDA=ON -DRESCNN_NCCL=ON, which needs RESCNN_MPI: MPI launches
// the ranks and carries NCCL's unique id from rank 0 to the others);
// elsewhere make_nccl_group() throws "built without NCCL".
//
// Create it before the first CUDA tensor: it selects the GPU of this rank's
// local rank on its host (OMPI_COMM_WORLD_LOCAL_RANK modulo the GPUs
// there). Collectives run on a stream of their own, ordered after the work
// already queued on rescnn's compute stream, in the order they are called
// (NCCL's own ordering rule, which process_group.hpp states for every
// group). wait() makes the compute stream wait for the collective and
// blocks the host until it is done, polling NCCL's asynchronous error
// state; past the timeout (RESCNN_DIST_TIMEOUT) the communicator is
// aborted and the job stopped with a message naming this rank.
#pragma once

#include <memory>
#include <string>

#include "rescnn/dist/mpi.hpp"
#include "rescnn/dist/process_group.hpp"

#if defined(RESCNN_NCCL) && defined(RESCNN_CUDA)
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "rescnn/backend/cuda/context.hpp"
#endif

namespace rescnn::dist {

#if defined(RESCNN_NCCL) && defined(RESCNN_CUDA)

#ifndef RESCNN_MPI
#error "RESCNN_NCCL needs RESCNN_MPI: MPI launches the ranks and distributes NCCL's unique id"
#endif

class NcclProcessGroup final : public ProcessGroup {
 public:
  // `bootstrap`: a host group of the same ranks (the MPI world).
  explicit NcclProcessGroup(std::shared_ptr<ProcessGroup> bootstrap,
                            double timeout_seconds = collective_timeout_seconds())
      : bootstrap_(std::move(bootstrap)), timeout_(timeout_seconds) {
    check<DistError>(bootstrap_ && bootstrap_->memory() == MemoryKind::host,
                     "NCCL: the bootstrap group must be a host (MPI) group");
    rank_ = bootstrap_->rank();
    size_ = bootstrap_->size();
    int devices = 0;
    check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    check<DistError>(devices > 0, "NCCL: rank ", rank_, " sees no CUDA device");
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    device_ = (local ? std::atoi(local) : rank_) % devices;
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    ncclUniqueId id{};
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    bootstrap_->broadcast(&id, sizeof(id) / 8, DType::i64, 0);
    static_assert(sizeof(ncclUniqueId) % 8 == 0);
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~NcclProcessGroup() override {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (comm_) (void)ncclCommDestroy(comm_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  NcclProcessGroup(const NcclProcessGroup&) = delete;
  NcclProcessGroup& operator=(const NcclProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }
  std::string backend() const override { return "nccl"; }
  MemoryKind memory() const override { return MemoryKind::cuda; }

  std::shared_ptr<Work> allreduce_sum_async(void* data, std::size_t count, DType type) override {
    after_compute();
    check_nccl(ncclAllReduce(data, data, count, nccl_type(type), ncclSum, comm_, stream_), "ncclAllReduce");
    return record("allreduce");
  }
  void broadcast(void* data, std::size_t count, DType type, int root) override {
    check<DistError>(root >= 0 && root < size_, "broadcast: root rank ", root, " does not exist in a world of ", size_,
                     " processes");
    after_compute();
    check_nccl(ncclBroadcast(data, data, count, nccl_type(type), root, comm_, stream_), "ncclBroadcast");
    record("broadcast")->wait();
  }
  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    after_compute();
    check_nccl(ncclAllGather(in, out, count, nccl_type(type), comm_, stream_), "ncclAllGather");
    record("allgather")->wait();
  }
  // A one-element allreduce on the GPU: NCCL has no barrier of its own.
  void barrier() override {
    if (!barrier_buffer_) check_cuda(cudaMalloc(&barrier_buffer_, sizeof(float)), "cudaMalloc");
    allreduce_sum_async(barrier_buffer_, 1, DType::f32)->wait();
  }

  [[noreturn]] void abort_job(const std::string& reason) override {
    (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    bootstrap_->abort_job(reason);
    std::_Exit(1);  // not reached: the bootstrap group's abort_job does not return
  }

 private:
  struct Event final : Work {
    NcclProcessGroup* group;
    cudaEvent_t event{};
    const char* name;
    bool waited = false;
    ~Event() override { (void)cudaEventDestroy(event); }
    void wait() override {
      if (waited) return;
      group->wait_for(event, name);
      waited = true;
    }
  };

  // The collective reads what the compute stream wrote before it.
  void after_compute() {
    cudaEvent_t ready{};
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(ready, cuda::context().compute_stream()), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    (void)cudaEventDestroy(ready);  // released once the wait is satisfied
  }
  std::shared_ptr<Work> record(const char* name) {
    auto e = std::make_shared<Event>();
    e->group = this;
    e->name = name;
    check_cuda(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(e->event, stream_), "cudaEventRecord");
    ++sequence_;
    return e;
  }
  void wait_for(cudaEvent_t event, const char* name) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t q = cudaEventQuery(event);
      if (q == cudaSuccess) break;
      check<DistError>(q == cudaErrorNotReady, "NCCL: ", name, " failed on rank ", rank_, ": ", cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      (void)ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) abort_job(std::string("NCCL ") + name + ": " + ncclGetErrorString(async));
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_)
        abort_job(std::string(name) + " #" + std::to_string(sequence_) + " waited " + std::to_string(waited) +
                  " s for the other ranks (RESCNN_DIST_TIMEOUT)");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    check_cuda(cudaStreamWaitEvent(cuda::context().compute_stream(), event, 0), "cudaStreamWaitEvent");
  }

  static ncclDataType_t nccl_type(DType t) {
    switch (t) {
      case DType::f32: return ncclFloat32;
      case DType::f64: return ncclFloat64;
      case DType::i64: return ncclInt64;
    }
    return ncclFloat32;
  }
  void check_nccl(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess) fail<DistError>("NCCL: ", what, " failed on rank ", rank_, ": ", ncclGetErrorString(r));
  }
  void check_cuda(cudaError_t e, const char* what) const {
    if (e != cudaSuccess) fail<DistError>("NCCL: ", what, " failed on rank ", rank_, ": ", cudaGetErrorString(e));
  }

  std::shared_ptr<ProcessGroup> bootstrap_;
  double timeout_;
  int rank_ = 0, size_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* barrier_buffer_ = nullptr;
  std::uint64_t sequence_ = 0;
};

inline constexpr bool built_with_nccl = true;
// The NCCL group of the MPI world this program was launched into.
inline std::shared_ptr<ProcessGroup> make_nccl_group() { return std::make_shared<NcclProcessGroup>(make_mpi_group()); }

#else

inline constexpr bool built_with_nccl = false;
inline std::shared_ptr<ProcessGroup> make_nccl_group() {
  fail<DistError>("rescnn::dist: built without NCCL (configure with -DRESCNN_CUDA=ON -DRESCNN_NCCL=ON)");
}

#endif

}  // namespace rescnn::dist
