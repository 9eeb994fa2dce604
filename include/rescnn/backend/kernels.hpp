// rescnn/backend/kernels.hpp — the backend contract: every kernel a backend
// provides, with its arguments and what it must do.
//
// A layer never calls a backend. It calls ops::, which validates shapes and
// options once, allocates the outputs and then calls, through
// RESCNN_DISPATCH (ops/dispatch.hpp), the kernel of the same name in the
// tensor's backend namespace:
//
//   nn::Conv2d::forward -> ops::conv2d_forward -> cpu::conv2d_forward  (Tensor<T, Cpu>)
//                                              -> cuda::conv2d_forward (Tensor<T, Cuda>)
//
// Each backend defines, in its own namespace, exactly the functions declared
// below (rescnn::cpu in backend/cpu/*.hpp, rescnn::cuda in
// backend/cuda/*.cuh and conv2d.hpp). The declarations here are the CPU's;
// a definition whose signature drifts from them no longer matches its
// declaration and the ops:: call fails to compile as ambiguous. The CUDA
// backend's functions take the same arguments (device pointers instead of
// host ones) and are checked the same way by ops::'s calls in the CUDA build.
//
// Common contract. Pointers are to contiguous, row-major (NCHW) storage of
// the tensor's device; the geometry structs (backend/geometry.hpp) have been
// validated by ops::, so kernels check nothing and never throw for shapes.
// Outputs are overwritten unless the comment says "adds into" (gradients
// of parameters accumulate, as PyTorch's .grad). Optional inputs are null
// when absent. A kernel's result must not depend on the thread count (CPU)
// or, in deterministic mode, on the run (CUDA). T is float or double.
//
// Inside the CPU backend, the float kernels choose their instruction set at
// run time (backend/cpu/isa.hpp, float_kernels.hpp); that choice is
// invisible here. Under bf16 autocast (core/precision.hpp) the convolutions
// and Linear's products round their float operands to bf16 and accumulate
// in float (backend/cpu/bf16_kernels.hpp); the contract is otherwise the
// same. A backend that cannot compute in the precision asked must throw,
// not compute fp32 silently (the CUDA backend does so for now).
#pragma once

#include <cstdint>
#include <vector>

#include "rescnn/backend/geometry.hpp"
#include "rescnn/backend/tensor_groups.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn::cpu {

// ---- element-wise (n elements) ----------------------------------------------------------------------------
template <class T>
void relu_forward(index_t n, const T* x, T* y);  // y = max(x, 0)
template <class T>
void relu_backward(index_t n, const T* y, const T* dy, T* dx);  // dx = y > 0 ? dy : 0
template <class T>
void add(index_t n, const T* a, const T* b, T* out);  // out = a + b
template <class T>
void add_inplace(index_t n, T* out, const T* a);  // out += a
template <class T>
void add_relu_inplace(index_t n, T* out, const T* a);  // out = max(out + a, 0)

// op(group.ptr, i) for each element i of each group (optimizer updates).
template <class T, int K, class Op>
void for_each_element(const std::vector<TensorGroup<T, K>>& groups, const Op& op);

// ---- convolution (Conv2dGeometry: batch, channels, planes, kernel, stride, padding, dilation, groups) ----
// y = conv(x, w) + bias; bias may be null.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
// Adds into dw (when non-null: null for a frozen layer, and then db is null
// too) and db (when non-null); writes dx when non-null.
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);

// ---- fully connected: y [batch, out] = x [batch, in] w^T [in, out] + bias -------------------------------
template <class T>
void linear_forward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* bias, T* y);
// Adds into dw and db (each when non-null; dw null means frozen, db null
// too); writes dx when non-null.
template <class T>
void linear_backward(index_t batch, index_t in, index_t out, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);

// ---- batch normalisation (BatchNormSizes: batch, channels, plane) -----------------------------------------
// Normalises with the batch's statistics; updates the running ones with
// `momentum` (unbiased variance) and saves mean and 1/sqrt(var + eps) for
// the backward pass. gamma and beta may be null (not affine).
template <class T>
void batchnorm_forward_train(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps, T momentum,
                             T* running_mean, T* running_var, T* save_mean, T* save_invstd, T* y);
// Normalises with the running statistics.
template <class T>
void batchnorm_forward_eval(const BatchNormSizes& s, const T* x, const T* gamma, const T* beta, T eps,
                            const T* running_mean, const T* running_var, T* y);
// dx (written) and, when non-null, dgamma and dbeta (added into); with
// batch_statistics the mean and invstd are the batch's (train mode), else the
// running ones as an affine map (eval mode).
template <class T>
void batchnorm_backward(const BatchNormSizes& s, bool batch_statistics, const T* x, const T* dy, const T* gamma,
                        const T* mean, const T* invstd, T* dx, T* dgamma, T* dbeta);

// ---- pooling (Pool2dGeometry) -----------------------------------------------------------------------------
// argmax: the flat index within its input plane of each output's maximum.
template <class T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <class T>
void maxpool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int32_t* argmax, T* dx);
template <class T>
void avgpool2d_forward(const Pool2dGeometry& g, bool count_include_pad, const T* x, T* y);
template <class T>
void avgpool2d_backward(const Pool2dGeometry& g, bool count_include_pad, const T* dy, T* dx);
// Output bin i covers inputs [floor(i * in / out), ceil((i + 1) * in / out)), as PyTorch's.
template <class T>
void adaptive_avgpool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <class T>
void adaptive_avgpool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx);

// ---- loss and metrics (logits [batch, classes], labels in [0, classes)) ---------------------------------
// probs = softmax(logits) (kept for the backward pass); *loss (a host
// variable) = the batch mean of -log probs[label], summed in row order;
// with label smoothing e, of (1 - e)(-log probs[label]) + e mean_k(-log probs[k]).
template <class T>
void cross_entropy_forward(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, T* probs,
                           T* loss, double smoothing);
// dlogits = scale * (probs - target) / batch: the gradient of the mean loss,
// target = (1 - e) onehot(labels) + e / classes.
template <class T>
void cross_entropy_backward(index_t batch, index_t classes, const T* probs, const std::int64_t* labels, T scale,
                            T* dlogits, double smoothing);
// *result (a host variable) = the rows whose largest logit (the first, on ties) is at the label.
template <class T>
void count_correct(index_t batch, index_t classes, const T* logits, const std::int64_t* labels, index_t* result);

}  // namespace rescnn::cpu
