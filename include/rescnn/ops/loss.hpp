// rescnn/ops/loss.hpp — softmax cross-entropy and accuracy.
#pragma once

#include <cstdint>

#include "rescnn/core/tensor.hpp"
#include "rescnn/ops/dispatch.hpp"

namespace rescnn::ops {

template <class T, class D>
void check_logits_and_labels(const char* op, const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels) {
  check<ShapeError>(logits.defined() && logits.rank() == 2, op, ": expected logits of shape (N, classes), got ",
                    logits.shape());
  check<ShapeError>(logits.dim(0) >= 1 && logits.dim(1) >= 1, op, ": logits ", logits.shape(), " are empty");
  check<ShapeError>(labels.defined() && labels.shape() == Shape{logits.dim(0)}, op, ": labels of shape ",
                    labels.shape(), " do not match logits ", logits.shape(), " (expected (", logits.dim(0), "))");
  // Labels are checked on the host: an out-of-range label would read past
  // the row, and it is a user error that deserves a message.
  const auto host = labels.to_vector();
  for (std::size_t i = 0; i < host.size(); ++i)
    check(host[i] >= 0 && host[i] < logits.dim(1), op, ": label ", host[i], " at position ", i, " is out of range for ",
          logits.dim(1), " classes");
}

template <class T, class D>
T cross_entropy_forward(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels, Tensor<T, D>& probs,
                        double label_smoothing = 0) {
  check_logits_and_labels("cross_entropy", logits, labels);
  probs = Tensor<T, D>::empty(logits.shape());
  T loss{};
  RESCNN_DISPATCH(D, cross_entropy_forward(logits.dim(0), logits.dim(1), logits.data(), labels.data(), probs.data(),
                                           &loss, label_smoothing));
  return loss;
}

template <class T, class D>
Tensor<T, D> cross_entropy_backward(const Tensor<T, D>& probs, const Tensor<std::int64_t, D>& labels, T scale,
                                    double label_smoothing = 0) {
  auto dlogits = Tensor<T, D>::empty(probs.shape());
  RESCNN_DISPATCH(D, cross_entropy_backward(probs.dim(0), probs.dim(1), probs.data(), labels.data(), scale,
                                            dlogits.data(), label_smoothing));
  return dlogits;
}

template <class T, class D>
index_t count_correct(const Tensor<T, D>& logits, const Tensor<std::int64_t, D>& labels) {
  check_logits_and_labels("accuracy", logits, labels);
  index_t correct = 0;
  RESCNN_DISPATCH(D, count_correct(logits.dim(0), logits.dim(1), logits.data(), labels.data(), &correct));
  return correct;
}

}  // namespace rescnn::ops
