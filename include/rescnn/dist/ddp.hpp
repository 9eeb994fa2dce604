// rescnn/dist/ddp.hpp — data-parallel training: gradients averaged over the
// ranks of a process group while backward runs (PyTorch's
// DistributedDataParallel and its Reducer).
//
//   auto world = rescnn::dist::init();
//   auto model = rescnn::models::create<float>("resnet18", {});
//   rescnn::dist::DistributedDataParallel<float> ddp(model, world);
//   ... ddp.forward(x); ddp.backward(dy); optimizer.step();   // model's grads are averaged
//
// What it does, as PyTorch's:
//  - At construction rank 0's parameters and buffers are broadcast, so every
//    rank starts from the same model.
//  - The trainable parameters are grouped into buckets in reverse
//    registration order (roughly the order backward produces their
//    gradients): the first bucket holds about 1 MB, the rest about
//    `bucket_cap_mb` (25) each. Each parameter's `grad` becomes a view into its
//    bucket's flat buffer, so backward accumulates straight into it.
//  - During backward, once every parameter of a bucket has its gradient
//    (the post-backward hook of nn/module.hpp), the bucket's allreduce is
//    started on the group's collective thread while the layers before it
//    compute; the end of backward waits for all of them and divides by the
//    world size.
//  - Buckets are started strictly in bucket order (a bucket that completes
//    early waits for the ones before it), so every rank issues the same
//    collectives in the same order whatever its timing: the ordering rule of
//    process_group.hpp.
//  - `no_sync()` skips the reduction while it lives; the gradients
//    accumulate locally and the first backward after it reduces their sum.
//  - With broadcast_buffers (the default) rank 0's buffers (BatchNorm
//    running statistics) are broadcast before every training forward.
//
// The gradient reduction is a GradientReducer, usable without the wrapper:
// the Trainer attaches one to the model it trains, so checkpoints keep the
// model's own parameter names (DistributedDataParallel, like PyTorch's,
// prefixes them with "module.").
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rescnn/dist/process_group.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::dist {

struct DdpOptions {
  double bucket_cap_mb = 25;      // bucket size after the first
  double first_bucket_mb = 1;     // small, so communication starts early in backward
  bool broadcast_buffers = true;  // rank 0's buffers before every training forward
};

// Overwrites `t` on every rank with rank `root`'s values (staged through
// host memory when the group reduces host memory and `t` is on a device).
template <class T, class D>
void broadcast_tensor(ProcessGroup& group, Tensor<T, D>& t, int root = 0) {
  if (group.size() == 1 || !t.defined() || t.numel() == 0) return;
  if (is_cpu_v<D> || group.memory() == MemoryKind::cuda) {
    group.broadcast(t.data(), static_cast<std::size_t>(t.numel()), dtype_of<T>(), root);
  } else {
    std::vector<T> host = t.to_vector();
    group.broadcast(host.data(), host.size(), dtype_of<T>(), root);
    t.copy_(Tensor<T, D>::from_vector(t.shape(), host));
  }
}

// Gives every rank rank `root`'s parameters and buffers (after rank 0 alone
// has loaded weights from a file, say).
template <class T, class D>
void broadcast_module_state(nn::Module<T, D>& module, ProcessGroup& group, int root = 0) {
  if (group.size() == 1) return;
  for (auto* p : module.parameters()) broadcast_tensor(group, p->value, root);
  for (auto& [name, b] : module.named_buffers()) broadcast_tensor(group, *b, root);
}

// Timings of the last synchronised backward, for the benchmark.
struct ReducerStats {
  double backward_seconds = 0;  // from the start of backward to its end (before the wait)
  double wait_seconds = 0;      // waiting for allreduces after backward ended: the communication not hidden
  std::int64_t buckets = 0;
  std::int64_t bytes = 0;
};

template <class T, class D = Cpu>
class GradientReducer {
 public:
  using ModuleT = nn::Module<T, D>;
  using ParameterT = nn::Parameter<T, D>;

  GradientReducer(ModuleT& module, std::shared_ptr<ProcessGroup> group, DdpOptions options = {})
      : module_(module), group_(std::move(group)), options_(options) {
    check<DistError>(group_ != nullptr, "DistributedDataParallel: the process group is null");
    check<ValueError>(options_.bucket_cap_mb > 0 && options_.first_bucket_mb > 0,
                      "DistributedDataParallel: bucket sizes must be positive, got bucket_cap_mb=",
                      options_.bucket_cap_mb, " first_bucket_mb=", options_.first_bucket_mb);
    check<DistError>(group_->memory() == MemoryKind::host || !is_cpu_v<D>, "DistributedDataParallel: a ",
                     group_->backend(), " group reduces device memory; this model is on the CPU");
    broadcast_state(/*parameters=*/true);
    build_buckets();
  }

  ProcessGroup& group() const { return *group_; }
  const ReducerStats& last_stats() const { return stats_; }
  std::size_t num_buckets() const { return buckets_.size(); }
  // The parameter names of bucket i, in bucket order (for tests and docs).
  std::vector<std::string> bucket_parameter_names(std::size_t i) const {
    std::vector<std::string> out;
    for (const auto& slot : buckets_.at(i).slots) out.push_back(slot.name);
    return out;
  }

  // Rank 0's buffers to every rank (parameters too when asked).
  void broadcast_state(bool parameters) {
    if (group_->size() == 1) return;
    if (parameters)
      for (auto* p : module_.parameters()) broadcast_tensor(p->value);
    for (auto& [name, b] : module_.named_buffers()) broadcast_tensor(*b);
  }
  void before_forward() {
    if (options_.broadcast_buffers && module_.is_training()) broadcast_state(/*parameters=*/false);
  }

  bool sync_enabled() const { return sync_enabled_; }
  void set_sync_enabled(bool on) { sync_enabled_ = on; }

  // module.backward(grad_output) with the reduction overlapped; returns its result.
  typename ModuleT::TensorT backward(const typename ModuleT::TensorT& grad_output) {
    if (!sync_enabled_ || group_->size() == 1) return module_.backward(grad_output);
    prepare();
    const auto start = std::chrono::steady_clock::now();
    typename ModuleT::TensorT dx;
    {
      const typename ModuleT::PostBackwardHook hook = [this](ModuleT& child) { on_child_done(child); };
      const typename ModuleT::PostBackwardHookGuard guard(hook);
      dx = module_.backward(grad_output);
    }
    const auto backward_end = std::chrono::steady_clock::now();
    finish();
    stats_.backward_seconds = std::chrono::duration<double>(backward_end - start).count();
    stats_.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - backward_end).count();
    return dx;
  }

 private:
  struct Slot {
    std::string name;
    ParameterT* param;
    index_t offset, numel;
  };
  struct Bucket {
    std::vector<Slot> slots;
    Tensor<T, D> flat;        // the gradients of its parameters, contiguous
    std::vector<T> host;      // staging for a host group when the tensors are not
    std::size_t pending = 0;  // parameters whose gradient is not complete yet
    std::vector<bool> ready;  // per slot: its gradient is complete
    std::shared_ptr<Work> work;
  };

  void broadcast_tensor(Tensor<T, D>& t) { dist::broadcast_tensor(*group_, t, 0); }

  void build_buckets() {
    auto named = module_.named_parameters();
    std::reverse(named.begin(), named.end());
    Bucket current;
    std::size_t bytes = 0;
    auto cap = [&] {
      return static_cast<std::size_t>((buckets_.empty() ? options_.first_bucket_mb : options_.bucket_cap_mb) * 1024 *
                                      1024);
    };
    auto close = [&] {
      if (current.slots.empty()) return;
      buckets_.push_back(std::move(current));
      current = Bucket();
      bytes = 0;
    };
    for (auto& [name, p] : named) {
      if (!p->requires_grad) continue;  // frozen: never reduced, as in PyTorch
      check<DistError>(!index_.contains(p), "DistributedDataParallel: parameter '", name,
                       "' is registered twice (shared parameters are not supported)");
      current.slots.push_back({name, p, 0, p->numel()});
      bytes += static_cast<std::size_t>(p->numel()) * sizeof(T);
      index_[p] = {buckets_.size(), current.slots.size() - 1};
      if (bytes >= cap()) close();
    }
    close();
    for (auto& bucket : buckets_) {
      index_t total = 0;
      for (auto& slot : bucket.slots) {
        slot.offset = total;
        total += slot.numel;
      }
      bucket.flat = Tensor<T, D>::zeros({total});
      stats_.bytes += static_cast<std::int64_t>(total) * static_cast<std::int64_t>(sizeof(T));
      for (auto& slot : bucket.slots) bind_view(bucket, slot);
    }
    stats_.buckets = static_cast<std::int64_t>(buckets_.size());
  }

  // Makes the parameter's grad a view into the bucket, keeping its value.
  void bind_view(Bucket& bucket, Slot& slot) {
    Tensor<T, D> view = bucket.flat.slice(slot.offset, slot.offset + slot.numel).reshape(slot.param->value.shape());
    if (slot.param->grad.defined() && slot.param->grad.shape() == view.shape()) view.copy_(slot.param->grad);
    slot.param->grad = std::move(view);
  }
  // Whether someone replaced a parameter's grad since the buckets were built.
  bool is_bound(const Bucket& bucket, const Slot& slot) const {
    return slot.param->grad.shares_storage_with(bucket.flat) &&
           slot.param->grad.data() == bucket.flat.data() + slot.offset;
  }

  void prepare() {
    for (auto& bucket : buckets_) {
      for (auto& slot : bucket.slots)
        if (!is_bound(bucket, slot)) bind_view(bucket, slot);
      bucket.pending = bucket.slots.size();
      bucket.ready.assign(bucket.slots.size(), false);
      bucket.work.reset();
    }
    next_to_start_ = 0;
  }

  void on_child_done(ModuleT& child) {
    bool any = false;
    for (auto* p : child.parameters()) {
      const auto it = index_.find(p);
      if (it == index_.end()) continue;
      auto& [b, s] = it->second;
      if (ready_mark(b, s)) any = true;
    }
    if (any) start_ready_buckets();
  }

  // Marks one parameter complete; true when this completes its bucket.
  bool ready_mark(std::size_t b, std::size_t s) {
    Bucket& bucket = buckets_[b];
    if (bucket.ready[s]) return false;
    bucket.ready[s] = true;
    return --bucket.pending == 0;
  }

  void start_ready_buckets() {
    while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) start(buckets_[next_to_start_++]);
  }

  void start(Bucket& bucket) {
    const auto n = static_cast<std::size_t>(bucket.flat.numel());
    if (is_cpu_v<D> || group_->memory() == MemoryKind::cuda) {
      bucket.work = group_->allreduce_sum_async(bucket.flat.data(), n, dtype_of<T>());
    } else {
      bucket.host = bucket.flat.to_vector();
      bucket.work = group_->allreduce_sum_async(bucket.host.data(), n, dtype_of<T>());
    }
  }

  void finish() {
    // Parameters no hook reported (a leaf root module, or one outside any
    // container's child_backward): their buckets start now, still in order.
    for (auto& bucket : buckets_) bucket.pending = 0;
    start_ready_buckets();
    const T inverse = T(1) / static_cast<T>(group_->size());
    for (auto& bucket : buckets_) {
      bucket.work->wait();
      if (!is_cpu_v<D> && group_->memory() == MemoryKind::host)
        bucket.flat.copy_(Tensor<T, D>::from_vector(bucket.flat.shape(), bucket.host));
      scale(bucket.flat, inverse);
    }
  }

  static void scale(Tensor<T, D>& t, T factor) {
    if constexpr (is_cpu_v<D>) {
      T* p = t.data();
      const index_t n = t.numel();
#pragma omp parallel for schedule(static)
      for (index_t i = 0; i < n; ++i) p[i] *= factor;
    } else {
      std::vector<T> host = t.to_vector();
      for (auto& v : host) v *= factor;
      t.copy_(Tensor<T, D>::from_vector(t.shape(), host));
    }
  }

  ModuleT& module_;
  std::shared_ptr<ProcessGroup> group_;
  DdpOptions options_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const ParameterT*, std::pair<std::size_t, std::size_t>> index_;
  std::size_t next_to_start_ = 0;
  bool sync_enabled_ = true;
  ReducerStats stats_;
};

// While alive, backward does not reduce (gradient accumulation).
template <class Reducer>
class NoSyncGuard {
 public:
  explicit NoSyncGuard(Reducer& r) : reducer_(r), previous_(r.sync_enabled()) { reducer_.set_sync_enabled(false); }
  ~NoSyncGuard() { reducer_.set_sync_enabled(previous_); }
  NoSyncGuard(const NoSyncGuard&) = delete;
  NoSyncGuard& operator=(const NoSyncGuard&) = delete;

 private:
  Reducer& reducer_;
  bool previous_;
};

// The module wrapper: forward and backward of `module` with its gradients
// averaged over the group. Its parameters are the module's, named
// "module.<name>" as PyTorch's DDP names them; save module() for a
// checkpoint any single process can load.
template <class T, class D = Cpu>
class DistributedDataParallel : public nn::Module<T, D> {
 public:
  using typename nn::Module<T, D>::TensorT;

  DistributedDataParallel(std::shared_ptr<nn::Module<T, D>> module, std::shared_ptr<ProcessGroup> group,
                          DdpOptions options = {})
      : module_(this->register_module("module", std::move(module))), reducer_(*module_, std::move(group), options) {}

  nn::Module<T, D>& module() { return *module_; }
  GradientReducer<T, D>& reducer() { return reducer_; }

  TensorT forward(const TensorT& x) override {
    reducer_.before_forward();
    return module_->forward(x);
  }
  TensorT backward(const TensorT& grad_output) override {
    module_->set_input_grad_needed(this->input_grad_needed());
    return reducer_.backward(grad_output);
  }
  Shape output_shape(const Shape& input) const override { return module_->output_shape(input); }
  std::string type_name() const override { return "DistributedDataParallel"; }

  // ddp.no_sync(): auto guard = ddp.no_sync(); ... backward without reduction.
  [[nodiscard]] NoSyncGuard<GradientReducer<T, D>> no_sync() { return NoSyncGuard<GradientReducer<T, D>>(reducer_); }

 private:
  std::shared_ptr<nn::Module<T, D>> module_;
  GradientReducer<T, D> reducer_;
};

}  // namespace rescnn::dist
