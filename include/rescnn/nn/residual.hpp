// rescnn/nn/residual.hpp — the skip-connection combinator every residual
// block is built on.
//
//      x ── pre ── h ──── branch ────┐
//      │           └─(shortcut)─┐    (+) ── activation ── y
//      └────────────(shortcut)──┴────┘
//
//   h        = pre(x)                    (identity for post-activation blocks)
//   branch   = branch(h)
//   shortcut = projection(h or x), or x  (identity when shapes already match)
//   y        = act(branch + shortcut)    (ReLU, or nothing for pre-activation)
//
// Backward sends dy (through the activation) to both paths and adds the input
// gradients where the paths meet. The pre-stage is what a pre-activation
// block (He et al. 2016, "Identity Mappings") needs: BN and ReLU run once and
// feed both the branch and a projection shortcut.
//
// Blocks (Residual, BasicBlock, Bottleneck, ResNeXtBlock, PreActBlock) derive
// from ResidualBlock: they register their layers under PyTorch's names
// (conv1, bn1, ..., downsample) for parameter naming, and wire the same layers
// into the combinator's paths for computation.
#pragma once

#include <memory>

#include "rescnn/nn/module.hpp"
#include "rescnn/nn/sequential.hpp"
#include "rescnn/ops/elementwise.hpp"

namespace rescnn::nn {

template <class T, class D = Cpu>
class ResidualBlock : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;
  using ModulePtr = std::shared_ptr<Module<T, D>>;

  TensorT forward(const TensorT& x) override {
    TensorT h = pre_.size() ? pre_.forward(x) : x.view();
    TensorT y = branch_.forward(h);
    // Identity shortcut: shapes must match, else ShapeError names both.
    const TensorT s = shortcut_ ? shortcut_->forward(shortcut_takes_pre_ ? h : x) : x.view();
    // One pass over memory instead of two: y = relu(y + s).
    if (post_relu_)
      ops::add_relu_(y, s);
    else
      ops::add_(y, s);
    if (this->recording()) output_ = y.view();
    return y;
  }

  // Runs only what the wanted gradients need (module.hpp): with the block's
  // input gradient not needed, a frozen path is not run backward.
  TensorT backward(const TensorT& grad_output) override {
    this->require_forward(output_);
    TensorT g = post_relu_ ? ops::relu_backward(output_, grad_output) : grad_output.view();
    output_ = TensorT();
    const bool need = this->input_grad_needed();
    const bool has_pre = pre_.size() > 0;
    // h: what the branch reads (pre's output, or the block's input).
    const bool need_h = need || (has_pre && pre_.has_trainable_parameters());
    TensorT dh = Module<T, D>::child_backward(branch_, g, need_h);
    if (shortcut_ && shortcut_takes_pre_) {
      TensorT ds = Module<T, D>::child_backward(*shortcut_, g, need_h);
      if (!need_h) return TensorT();
      ops::add_(dh, ds);
      return Module<T, D>::child_backward(pre_, dh, need);
    }
    TensorT ds = shortcut_ ? Module<T, D>::child_backward(*shortcut_, g, need) : (need ? std::move(g) : TensorT());
    TensorT dx = !has_pre ? std::move(dh) : need_h ? Module<T, D>::child_backward(pre_, dh, need) : TensorT();
    if (!need) return TensorT();
    ops::add_(dx, ds);
    return dx;
  }

  Shape output_shape(const Shape& input) const override {
    const Shape h = pre_.size() ? pre_.output_shape(input) : input;
    const Shape b = branch_.output_shape(h);
    const Shape s = shortcut_ ? shortcut_->output_shape(shortcut_takes_pre_ ? h : input) : input;
    if (b != s)
      fail<ShapeError>(type_name(), ": the branch gives ", b, " but the shortcut gives ", s, " for input ", input,
                       " (use a projection shortcut when stride or channels change)");
    return b;
  }

  std::string type_name() const override = 0;

  // The wiring, read by passes over the computation (fuse_conv_bn,
  // export_onnx): pre-stage (empty for post-activation blocks), branch,
  // shortcut (null: identity), which input the shortcut reads, and whether
  // a ReLU follows the sum.
  Sequential<T, D>& pre() { return pre_; }
  Sequential<T, D>& branch() { return branch_; }
  const Sequential<T, D>& pre() const { return pre_; }
  const Sequential<T, D>& branch() const { return branch_; }
  const ModulePtr& shortcut() const { return shortcut_; }
  bool shortcut_takes_pre_output() const { return shortcut_takes_pre_; }
  bool post_relu() const { return post_relu_; }

 protected:
  // Wiring, called by the derived block's constructor after registering its
  // layers. `shortcut` null means identity.
  //
  // Every layer on a path must be a registered child of the block
  // (register_module): train()/eval(), parameters(), the optimizer and the
  // state dict reach a block's layers only through its children, so an
  // unregistered one would silently miss them all. Anything else is a
  // ValueError naming the layer.
  void set_pre(std::initializer_list<ModulePtr> layers) {
    for (auto& l : layers) pre_.push_back(registered(l, "set_pre"));
  }
  void set_branch(std::initializer_list<ModulePtr> layers) {
    for (auto& l : layers) branch_.push_back(registered(l, "set_branch"));
  }
  void set_shortcut(ModulePtr shortcut, bool takes_pre_output = false) {
    shortcut_ = shortcut ? registered(shortcut, "set_shortcut") : nullptr;
    shortcut_takes_pre_ = takes_pre_output;
  }
  void set_post_relu(bool on) { post_relu_ = on; }

 private:
  // A layer is wired correctly when it is a registered child, or a
  // container (a Sequential grouping conv4 and bn4, say) whose children all
  // are and which holds nothing of its own.
  bool reachable(const ModulePtr& layer) const {
    for (const auto& [name, child] : this->named_children())
      if (child == layer) return true;
    if (layer->named_children().empty()) return false;
    std::size_t parameters = 0, buffers = 0;
    for (const auto& [name, child] : layer->named_children()) {
      if (!reachable(child)) return false;
      parameters += child->named_parameters().size();
      buffers += child->named_buffers().size();
    }
    return layer->named_parameters().size() == parameters && layer->named_buffers().size() == buffers;
  }

  const ModulePtr& registered(const ModulePtr& layer, const char* where) const {
    if (!layer) fail<ValueError>(type_name(), ".", where, ": a layer is null");
    if (reachable(layer)) return layer;
    fail<ValueError>(type_name(), ".", where, ": the ", layer->type_name(), "(", layer->extra_repr(),
                     ") passed is not a registered child of the block; register_module() it first, or train()/eval(), "
                     "parameters() and the state dict would not reach it");
  }

  Sequential<T, D> pre_, branch_;  // computation order (names live in the block)
  ModulePtr shortcut_;
  bool shortcut_takes_pre_ = false;
  bool post_relu_ = true;
  TensorT output_;
};

}  // namespace rescnn::nn
