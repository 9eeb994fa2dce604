// rescnn/nn/module.hpp — the Module interface, parameters and grad mode.
//
// A network is a runtime tree of Modules (never one nested template type, so
// it compiles quickly and its errors stay readable). Each module:
//  - computes `forward(x)` and, when gradients are enabled, keeps what its
//    `backward(dy)` needs (views of inputs/outputs, saved statistics);
//  - `backward(dy)` returns dL/dx and ADDS dL/dparam into each parameter's
//    `grad`, as PyTorch's .grad accumulates until zero_grad();
//  - lists its parameters and buffers with dotted names ("layer1.0.conv1.weight")
//    in registration order, which is PyTorch's state_dict order.
//
// Gradients are recorded unless a NoGradGuard is alive (torch.no_grad());
// this is independent of train()/eval(), as in PyTorch: an eval-mode network
// can still be differentiated, and evaluation under NoGradGuard keeps nothing.
//
// Frozen parameters (requires_grad_(false), PyTorch's p.requires_grad =
// False) get no gradient work: backward computes no weight gradient for a
// frozen layer, and where nothing before a layer is trainable and the input
// gradient is not wanted (set_input_grad_needed(false), as the Trainer sets
// on the model it trains: nobody reads dL/d(images)), backward does not run
// those layers at all. Optimizers skip frozen parameters. So fine-tuning the
// head of a frozen backbone costs one Linear backward.
//
// Modules register pointers to their own members, so they are neither
// copyable nor movable; hold them by value or by shared_ptr.
#pragma once

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rescnn/core/tensor.hpp"

namespace rescnn::nn {

template <class T, class D = Cpu>
struct Parameter {
  Tensor<T, D> value;
  Tensor<T, D> grad;          // same shape as value; accumulated by backward
  bool requires_grad = true;  // false: frozen (no gradient computed, optimizers skip it)

  bool defined() const { return value.defined(); }
  index_t numel() const { return value.numel(); }
  // Sets the value and a zero gradient of the same shape.
  void reset(Tensor<T, D> v) {
    grad = Tensor<T, D>::zeros(v.shape());
    value = std::move(v);
  }
};

namespace detail {
inline bool& grad_mode() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

inline bool is_grad_enabled() { return detail::grad_mode(); }

// While alive, forward passes on this thread record nothing for backward.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(detail::grad_mode()) { detail::grad_mode() = false; }
  ~NoGradGuard() { detail::grad_mode() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

template <class T, class D = Cpu>
class Module {
 public:
  using TensorT = Tensor<T, D>;
  using ParameterT = Parameter<T, D>;

  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual TensorT forward(const TensorT& x) = 0;
  virtual TensorT backward(const TensorT& grad_output) = 0;
  // The output shape for an input shape, validated as forward would, without
  // computing anything (used by summaries and to check models early).
  virtual Shape output_shape(const Shape& input) const = 0;
  // The class name as PyTorch prints it ("Conv2d").
  virtual std::string type_name() const = 0;
  // The arguments PyTorch prints inside the parentheses.
  virtual std::string extra_repr() const { return {}; }

  TensorT operator()(const TensorT& x) { return forward(x); }

  // Called on this thread after each child module's backward returns, when
  // the gradients of that child's parameters are complete (each module runs
  // once per forward in a tree). DistributedDataParallel starts a bucket's
  // allreduce from here while the layers before it are still running
  // backward (PyTorch's post-accumulate-grad hooks). One at a time; the
  // guard restores the previous one.
  using PostBackwardHook = std::function<void(Module&)>;
  class PostBackwardHookGuard {
   public:
    explicit PostBackwardHookGuard(const PostBackwardHook& hook) : previous_(post_backward_hook()) {
      post_backward_hook() = &hook;
    }
    ~PostBackwardHookGuard() { post_backward_hook() = previous_; }
    PostBackwardHookGuard(const PostBackwardHookGuard&) = delete;
    PostBackwardHookGuard& operator=(const PostBackwardHookGuard&) = delete;

   private:
    const PostBackwardHook* previous_;
  };

  // Sets training mode on this module and all descendants.
  void train(bool mode = true) {
    training_ = mode;
    for (auto& [name, child] : children_) child->train(mode);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  std::vector<std::pair<std::string, ParameterT*>> named_parameters() {
    std::vector<std::pair<std::string, ParameterT*>> out;
    collect_parameters("", out);
    return out;
  }
  std::vector<ParameterT*> parameters() {
    std::vector<ParameterT*> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  std::vector<std::pair<std::string, TensorT*>> named_buffers() {
    std::vector<std::pair<std::string, TensorT*>> out;
    collect_buffers("", out);
    return out;
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }

  // Number of parameter elements (PyTorch's sum(p.numel() for p in parameters())).
  index_t num_parameters() {
    index_t n = 0;
    for (auto* p : parameters()) n += p->numel();
    return n;
  }
  index_t num_buffer_elements() {
    index_t n = 0;
    for (auto& [name, b] : named_buffers()) n += b->numel();
    return n;
  }

  void zero_grad() {
    for (auto* p : parameters()) p->grad.zero_();
  }

  // Freezes (false) or unfreezes every parameter of this module and its
  // descendants, as torch.nn.Module.requires_grad_.
  void requires_grad_(bool on = true) {
    for (auto* p : parameters()) p->requires_grad = on;
  }
  bool has_trainable_parameters() {
    for (auto* p : parameters())
      if (p->requires_grad) return true;
    return false;
  }

  // Whether backward must return dL/dx (true unless told otherwise). A
  // container sets it on its children before their backward; a module that
  // is not asked for it may return an undefined tensor.
  void set_input_grad_needed(bool needed) { input_grad_needed_ = needed; }
  bool input_grad_needed() const { return input_grad_needed_; }

  // PyTorch-style description of the module tree.
  std::string to_string() const {
    std::ostringstream os;
    print(os, 0);
    return os.str();
  }
  friend std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.to_string(); }

 protected:
  Module() = default;

  void register_parameter(std::string name, ParameterT& p) { parameters_.emplace_back(std::move(name), &p); }
  void register_buffer(std::string name, TensorT& t) { buffers_.emplace_back(std::move(name), &t); }
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    check(m != nullptr, type_name(), ": child module '", name, "' is null");
    children_.emplace_back(std::move(name), m);
    return m;
  }

  // Whether forward should keep what backward needs.
  static bool recording() { return is_grad_enabled(); }

  // Runs child.backward(g) when the child has something to do: its input
  // gradient is needed or it has trainable parameters; else returns an
  // undefined tensor without running it.
  static TensorT child_backward(Module& child, const TensorT& g, bool input_grad_needed) {
    child.set_input_grad_needed(input_grad_needed);
    if (!input_grad_needed && !child.has_trainable_parameters()) return TensorT();
    TensorT dx = child.backward(g);
    if (const PostBackwardHook* hook = post_backward_hook()) (*hook)(child);
    return input_grad_needed ? std::move(dx) : TensorT();
  }

  // Throws when backward is called without a recorded forward; `cached` is
  // what forward kept for backward.
  void require_forward(bool recorded) const {
    if (!recorded)
      fail<Error>(type_name(), ".backward: no forward pass was recorded (call forward first, outside NoGradGuard)");
  }
  void require_forward(const TensorT& cached) const { require_forward(cached.defined()); }

 private:
  static const PostBackwardHook*& post_backward_hook() {
    thread_local const PostBackwardHook* hook = nullptr;
    return hook;
  }

  void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, ParameterT*>>& out) {
    for (auto& [name, p] : parameters_)
      if (p->defined()) out.emplace_back(prefix + name, p);
    for (auto& [name, child] : children_) child->collect_parameters(prefix + name + ".", out);
  }
  void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, TensorT*>>& out) {
    for (auto& [name, b] : buffers_)
      if (b->defined()) out.emplace_back(prefix + name, b);
    for (auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
  }
  void print(std::ostream& os, int indent) const {
    os << type_name() << "(";
    if (children_.empty()) {
      os << extra_repr() << ")";
      return;
    }
    const std::string extra = extra_repr();
    if (!extra.empty()) os << "\n" << std::string(static_cast<std::size_t>(indent + 2), ' ') << extra;
    for (auto& [name, child] : children_) {
      os << "\n" << std::string(static_cast<std::size_t>(indent + 2), ' ') << "(" << name << "): ";
      child->print(os, indent + 2);
    }
    os << "\n" << std::string(static_cast<std::size_t>(indent), ' ') << ")";
  }

  bool training_ = true;
  bool input_grad_needed_ = true;
  std::vector<std::pair<std::string, ParameterT*>> parameters_;
  std::vector<std::pair<std::string, TensorT*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace rescnn::nn
