// rescnn/nn/loss.hpp — softmax cross-entropy loss and accuracy.
#pragma once

#include <cstdint>

#include "rescnn/ops/loss.hpp"

namespace rescnn::nn {

struct CrossEntropyLossOptions {
  // torch.nn.CrossEntropyLoss(label_smoothing=...): the target is
  // (1 - e) onehot(label) + e / classes, in [0, 1].
  double label_smoothing = 0;
};

// torch.nn.CrossEntropyLoss() over logits (N, classes) and integer class
// labels (N): the mean over the batch of -log softmax(logits)[label], or
// with label smoothing e, of (1 - e)(-log p[label]) + e mean_k(-log p[k]).
template <class T, class D = Cpu>
class CrossEntropyLoss {
 public:
  using TensorT = Tensor<T, D>;
  using Labels = Tensor<std::int64_t, D>;

  explicit CrossEntropyLoss(CrossEntropyLossOptions options = {}) : options_(options) {
    const double e = options_.label_smoothing;
    check<ValueError>(e >= 0 && e <= 1, "CrossEntropyLoss: label_smoothing ", e, " is outside [0, 1]");
  }
  const CrossEntropyLossOptions& options() const { return options_; }

  T forward(const TensorT& logits, const Labels& labels) {
    const T loss = ops::cross_entropy_forward(logits, labels, probs_, options_.label_smoothing);
    labels_ = labels.view();
    return loss;
  }
  T operator()(const TensorT& logits, const Labels& labels) { return forward(logits, labels); }

  // d loss / d logits for the last forward, times `scale`.
  TensorT backward(T scale = T(1)) {
    check<Error>(probs_.defined(), "CrossEntropyLoss.backward: no forward pass was recorded");
    return ops::cross_entropy_backward(probs_, labels_, scale, options_.label_smoothing);
  }

 private:
  CrossEntropyLossOptions options_;
  TensorT probs_;
  Labels labels_;
};

// Fraction of rows whose largest logit is at the label.
template <class T, class D>
double accuracy(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels) {
  return static_cast<double>(ops::count_correct(logits, labels)) / static_cast<double>(logits.dim(0));
}

}  // namespace rescnn::nn
