// rescnn/nn/sequential.hpp — a chain of modules.
//
// Children are named "0", "1", ... by default (torch.nn.Sequential) or by the
// name given (an OrderedDict in PyTorch), and parameter names follow:
// "0.weight", "conv1.weight".
#pragma once

#include <memory>
#include <string>

#include "rescnn/nn/module.hpp"

namespace rescnn::nn {

template <class T, class D = Cpu>
class Sequential : public Module<T, D> {
 public:
  using typename Module<T, D>::TensorT;
  using ModulePtr = std::shared_ptr<Module<T, D>>;

  Sequential() = default;

  template <class... M>
  explicit Sequential(std::shared_ptr<M>... modules) {
    (push_back(std::move(modules)), ...);
  }

  // Appends a child named by its position.
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    return push_back(std::to_string(layers_.size()), std::move(module));
  }

  // Appends a named child.
  template <class M>
  std::shared_ptr<M> push_back(std::string name, std::shared_ptr<M> module) {
    for (auto& [existing, child] : this->named_children())
      check(existing != name, "Sequential: a child named '", name, "' already exists");
    this->register_module(std::move(name), module);
    layers_.push_back(module);
    return module;
  }

  // Constructs a child in place: seq.emplace<Conv2d<float>>(options).
  template <class M, class... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    return push_back(std::make_shared<M>(std::forward<Args>(args)...));
  }

  std::size_t size() const { return layers_.size(); }
  // The layers in computation order (what fuse_conv_bn and export_onnx walk).
  const std::vector<ModulePtr>& layers() const { return layers_; }
  Module<T, D>& operator[](std::size_t i) {
    check<ValueError>(i < layers_.size(), "Sequential: index ", i, " out of range for ", layers_.size(), " layers");
    return *layers_[i];
  }

  TensorT forward(const TensorT& x) override {
    check(!layers_.empty(), "Sequential: forward on an empty Sequential");
    TensorT h = layers_.front()->forward(x);
    for (std::size_t i = 1; i < layers_.size(); ++i) h = layers_[i]->forward(h);
    return h;
  }

  // When this Sequential's input gradient is not needed, the layers before
  // the first one with trainable parameters are not run backward at all,
  // and that one is not asked for its input gradient (module.hpp).
  TensorT backward(const TensorT& grad_output) override {
    check(!layers_.empty(), "Sequential: backward on an empty Sequential");
    const bool need = this->input_grad_needed();
    std::size_t first_trainable = 0;
    if (!need) {
      first_trainable = layers_.size();
      for (std::size_t i = 0; i < layers_.size() && first_trainable == layers_.size(); ++i)
        if (layers_[i]->has_trainable_parameters()) first_trainable = i;
    }
    TensorT g;
    for (std::size_t i = layers_.size(); i-- > first_trainable;)
      g = Module<T, D>::child_backward(*layers_[i], i + 1 == layers_.size() ? grad_output : g,
                                       need || i > first_trainable);
    return need ? std::move(g) : TensorT();
  }

  Shape output_shape(const Shape& input) const override {
    Shape s = input;
    for (const auto& layer : layers_) s = layer->output_shape(s);
    return s;
  }

  std::string type_name() const override { return "Sequential"; }

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace rescnn::nn
