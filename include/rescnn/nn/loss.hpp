// rescnn/nn/loss.hpp — softmax cross-entropy loss and accuracy.
#pragma once

#include <cstdint>

#include "rescnn/ops/loss.hpp"

namespace rescnn::nn {

// torch.nn.CrossEntropyLoss() over logits (N, classes) and integer class
// labels (N): the mean over the batch of -log softmax(logits)[label].
template <class T, class D = Cpu>
class CrossEntropyLoss {
 public:
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;

  T forward(const TensorT& logits, const Labels& labels) {
    const T loss = ops::cross_entropy_forward(logits, labels, probs_);
    labels_ = labels.view();
    return loss;
  }
  T operator()(const TensorT& logits, const Labels& labels) { return forward(logits, labels); }

  // d loss / d logits for the last forward, times `scale`.
  TensorT backward(T scale = T(1)) {
    check<Error>(probs_.defined(), "CrossEntropyLoss.backward: no forward pass was recorded");
    return ops::cross_entropy_backward(probs_, labels_, scale);
  }

 private:
  TensorT probs_;
  Labels labels_;
};

// Fraction of rows whose largest logit is at the label.
template <class T, class D>
double accuracy(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels) {
  return static_cast<double>(ops::count_correct(logits, labels)) / static_cast<double>(logits.dim(0));
}

}  // namespace rescnn::nn
