// rescnn/ops/dispatch.hpp — compile-time choice of backend by device type.
#pragma once

#include <type_traits>

#include "rescnn/core/device.hpp"

namespace rescnn::ops::detail {

template <class D>
inline constexpr bool unsupported_device_v = false;

// Used in the final `else` of a device dispatch: a device without kernels is
// a compile error naming the device, not a link error.
#define RESCNN_UNSUPPORTED_DEVICE(D) \
  static_assert(::rescnn::ops::detail::unsupported_device_v<D>, "rescnn: no kernels for this device in this build")

}  // namespace rescnn::ops::detail
