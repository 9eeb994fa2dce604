// rescnn/core/precision.hpp — mixed precision, autocast style.
//
//   {
//     rescnn::Autocast bf16(rescnn::Precision::bf16);
//     auto loss = criterion(model.forward(x), labels);   // convolutions and Linear in bf16
//     model.backward(...);                                // their gradients too
//   }                                                     // back to fp32
//
// Inside the scope, convolutions and Linear layers (forward and both
// gradients) multiply in the lower precision with float accumulation, as
// torch.autocast does. Everything else stays float: the tensors, BatchNorm
// and its statistics, the loss, the parameters, their gradients and the
// optimizer state, so checkpoints do not change and a run can switch
// precision at a resume.
//
//   bf16  the CPU's avx512_bf16 level (vdpbf16ps); a CPU without AVX512_BF16
//         computes in fp32 and says so once on stderr. CUDA: tensor cores.
//   fp16  CUDA only (with a GradScaler, optim/grad_scaler.hpp); asking a CPU
//         convolution for fp16 is a ValueError.
//
// The setting is per thread (as torch.autocast's): the thread that calls the
// layers decides; the kernels' own worker threads follow it.
#pragma once

#include <string>
#include <string_view>

#include "rescnn/core/enum_names.hpp"
#include "rescnn/core/error.hpp"

namespace rescnn {

enum class Precision { fp32, bf16, fp16 };

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "unknown";
}

// "fp32", "BF16", ... to the Precision; anything else is a ValueError
// naming the accepted values. `what` names the source in the message.
inline Precision parse_precision(std::string_view text, std::string_view what = "precision") {
  static constexpr Precision kAll[] = {Precision::fp32, Precision::bf16, Precision::fp16};
  return detail::parse_enum_name(text, kAll, precision_name, what);
}

namespace precision_detail {
inline Precision& thread_precision() {
  thread_local Precision current = Precision::fp32;
  return current;
}
}  // namespace precision_detail

// The precision convolutions and Linear layers multiply in on this thread.
inline Precision autocast_precision() { return precision_detail::thread_precision(); }

// Sets the precision for the scope; restores the previous one at its end.
class Autocast {
 public:
  explicit Autocast(Precision p) : previous_(precision_detail::thread_precision()) {
    precision_detail::thread_precision() = p;
  }
  ~Autocast() { precision_detail::thread_precision() = previous_; }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  Precision previous_;
};

}  // namespace rescnn
