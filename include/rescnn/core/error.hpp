// rescnn/core/error.hpp — the exception hierarchy.
//
// Every user mistake surfaces as one of these, with a message that names what
// was wrong (the layer, the argument, both shapes). Catch `rescnn::Error` to
// catch them all.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rescnn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A tensor had the wrong rank or extent for the operation it was given to.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An option or argument had an invalid value (zero kernel, groups that do not
// divide the channels, a label out of range, ...).
class ValueError : public Error {
 public:
  using Error::Error;
};

// A file could not be read or written, or its contents are malformed.
class IoError : public Error {
 public:
  using Error::Error;
};

namespace detail {

// Streams all arguments into one string: concat("conv: got ", 3, " channels").
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace detail

// Throws E with the concatenated message.
template <class E = ValueError, class... Args>
[[noreturn]] void fail(Args&&... message) {
  throw E(detail::concat(std::forward<Args>(message)...));
}

// Throws E with the concatenated message when `condition` is false. The
// message's parts are evaluated by the caller either way: where one costs
// something (a type_name(), an extra_repr()) on a path taken every step,
// write `if (!condition) fail<E>(...)` so it is built only on failure.
template <class E = ValueError, class... Args>
void check(bool condition, Args&&... message) {
  if (!condition) fail<E>(std::forward<Args>(message)...);
}

}  // namespace rescnn
