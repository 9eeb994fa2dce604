// rescnn/backend/cpu/loss.hpp — softmax cross-entropy over logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

// Mean over the batch of -log softmax(logits)[label]; stores the softmax
// probabilities for backward. Subtracting each row's maximum keeps exp()
// finite for any logits (log-sum-exp trick). Labels are validated by ops::.
//
// With label smoothing e (PyTorch's label_smoothing) the target is
// (1 - e) onehot(label) + e / classes, so a row's loss is
// (1 - e) (-log p[label]) + e * mean_k(-log p[k]).
//
// The result goes to *loss (a host variable), the same out-parameter form as
// every backend's kernels.
template <class T>
void cross_entropy_forward(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, T* probs,
                           T* loss, double smoothing = 0) {
  // Per-row losses summed afterwards in row order: an OpenMP reduction would
  // combine the threads' partial sums in an unspecified order, and a resumed
  // training run must reproduce its losses bit for bit.
  std::vector<double> row_loss(static_cast<std::size_t>(batch));
#pragma omp parallel for schedule(static)
  for (index_t n = 0; n < batch; ++n) {
    const T* z = logits + n * classes;
    T* p = probs + n * classes;
    const T zmax = *std::max_element(z, z + classes);
    double sum = 0, shifted_sum = 0;
    for (index_t k = 0; k < classes; ++k) {
      sum += std::exp(static_cast<double>(z[k] - zmax));
      shifted_sum += static_cast<double>(z[k] - zmax);
    }
    const double log_sum = std::log(sum);
    for (index_t k = 0; k < classes; ++k) p[k] = static_cast<T>(std::exp(static_cast<double>(z[k] - zmax) - log_sum));
    const double nll = log_sum - static_cast<double>(z[labels[n]] - zmax);
    row_loss[static_cast<std::size_t>(n)] =
        smoothing == 0 ? nll
                       : (1 - smoothing) * nll + smoothing * (log_sum - shifted_sum / static_cast<double>(classes));
  }
  double total = 0;
  for (double l : row_loss) total += l;
  *loss = static_cast<T>(total / static_cast<double>(batch));
}

// d(mean loss)/d logits = (softmax - target) / batch, times `scale` (the
// upstream gradient of the loss, 1 for a plain backward); the target is
// onehot(label), smoothed by `smoothing` as in the forward.
template <class T>
void cross_entropy_backward(index_t batch, index_t classes, const T* probs, const std::int64_t* labels, T scale,
                            T* dlogits, double smoothing = 0) {
  const T factor = scale / static_cast<T>(batch);
  const T on = static_cast<T>(1 - smoothing + smoothing / static_cast<double>(classes));
  const T off = static_cast<T>(smoothing / static_cast<double>(classes));
#pragma omp parallel for schedule(static)
  for (index_t n = 0; n < batch; ++n) {
    for (index_t k = 0; k < classes; ++k)
      dlogits[n * classes + k] = (probs[n * classes + k] - (k == labels[n] ? on : off)) * factor;
  }
}

// Number of rows whose arg-max equals the label (first maximum wins, as
// torch.argmax).
template <class T>
void count_correct(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, index_t* result) {
  index_t correct = 0;
  for (index_t n = 0; n < batch; ++n) {
    const T* z = logits + n * classes;
    correct += (std::max_element(z, z + classes) - z) == labels[n];
  }
  *result = correct;
}

}  // namespace rescnn::cpu
