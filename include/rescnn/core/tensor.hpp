// rescnn/core/tensor.hpp — Tensor<T, Device>: a shape over shared storage.
//
// Ownership rules, chosen so that accidental deep copies cannot happen:
//  - moves are cheap (a pointer and a shape);
//  - the copy constructor is deleted: `clone()` makes a deep copy, `view()`
//    and `reshape()` make another handle onto the same memory (like PyTorch's
//    `view`), and `slice()` views a range of the first axis (a sub-batch).
//  - storage is always contiguous, row-major (NCHW for 4-D), 64-byte aligned
//    at its start.
// Element access (`t(n, c, h, w)`, `at(...)`) exists for CPU tensors only; it
// is for tests and small glue code, not for kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iomanip>
#include <memory>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "rescnn/core/device.hpp"
#include "rescnn/core/error.hpp"
#include "rescnn/core/rng.hpp"
#include "rescnn/core/shape.hpp"

namespace rescnn {

template <class T>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return "int64";
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return "int32";
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return "uint8";
  else
    return "unknown";
}

namespace detail {

// One allocation on device D; freed when the last Tensor viewing it goes.
template <class T, class D>
class Storage {
 public:
  explicit Storage(index_t count)
      : data_(static_cast<T*>(DeviceTraits<D>::allocate(static_cast<std::size_t>(count) * sizeof(T)))), count_(count) {}
  // Memory that an upload from the host will fill: a GPU backend keeps it in
  // a pool whose reuse waits for its last reader, so the copy can run on its
  // own stream, overlapped with compute.
  struct ForUpload {};
  Storage(index_t count, ForUpload)
      : data_(static_cast<T*>(DeviceTraits<D>::allocate_for_upload(static_cast<std::size_t>(count) * sizeof(T)))),
        count_(count) {}
  ~Storage() { DeviceTraits<D>::deallocate(data_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() const { return data_; }
  index_t size() const { return count_; }

 private:
  T* data_;
  index_t count_;
};

}  // namespace detail

template <class T, class D = Cpu>
class Tensor {
  static_assert(std::is_trivially_copyable_v<T>, "Tensor elements must be trivially copyable");

 public:
  using value_type = T;
  using device_type = D;

  // An undefined tensor: no storage. `defined()` is false.
  Tensor() = default;

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;             // use clone() or view()
  Tensor& operator=(const Tensor&) = delete;  // use clone() or view()

  // ---- factories -----------------------------------------------------------

  // Uninitialised memory; for outputs that a kernel overwrites entirely.
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    t.storage_ = std::make_shared<detail::Storage<T, D>>(shape.numel());
    return t;
  }

  static Tensor zeros(const Shape& shape) {
    Tensor t = empty(shape);
    DeviceTraits<D>::zero(t.data(), t.bytes());
    return t;
  }

  static Tensor full(const Shape& shape, T value) {
    std::vector<T> host(static_cast<std::size_t>(shape.numel()), value);
    return from_host(shape, host.data());
  }

  static Tensor ones(const Shape& shape) { return full(shape, T(1)); }

  // Copies `values` (row-major) into a new tensor; the count must match.
  static Tensor from_vector(const Shape& shape, std::span<const T> values) {
    check<ShapeError>(static_cast<index_t>(values.size()) == shape.numel(), "Tensor::from_vector: ", values.size(),
                      " values given for shape ", shape, " which holds ", shape.numel());
    return from_host(shape, values.data());
  }
  static Tensor from_vector(const Shape& shape, std::initializer_list<T> values) {
    return from_vector(shape, std::span<const T>(values.begin(), values.size()));
  }
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values) {
    return from_vector(shape, std::span<const T>(values));
  }

  // Uniform in [lo, hi). Values are drawn on the host in row-major order, so
  // the same seed gives the same tensor on every device.
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen = default_generator()) {
    check(lo <= hi, "Tensor::uniform: lower bound ", lo, " exceeds upper bound ", hi);
    std::vector<T> host(static_cast<std::size_t>(shape.numel()));
    for (auto& v : host) v = static_cast<T>(gen.uniform(lo, hi));
    return from_host(shape, host.data());
  }

  static Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen = default_generator()) {
    check(stddev >= 0, "Tensor::normal: standard deviation ", stddev, " is negative");
    std::vector<T> host(static_cast<std::size_t>(shape.numel()));
    for (auto& v : host) v = static_cast<T>(gen.normal(mean, stddev));
    return from_host(shape, host.data());
  }

  // ---- observers -----------------------------------------------------------

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t dim(int axis) const { return shape_[axis]; }
  index_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }

  T* data() { return storage_ ? storage_->data() + offset_ : nullptr; }
  const T* data() const { return storage_ ? storage_->data() + offset_ : nullptr; }

  // True when both tensors view the same allocation (not necessarily the
  // same elements).
  bool shares_storage_with(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  // ---- views and copies ----------------------------------------------------

  // Another handle onto the same elements (no copy).
  Tensor view() const {
    Tensor t;
    t.storage_ = storage_;
    t.offset_ = offset_;
    t.shape_ = shape_;
    return t;
  }

  // Same elements, another shape with the same element count (no copy).
  // One extent may be -1 and is then inferred, as in PyTorch.
  Tensor reshape(std::initializer_list<index_t> dims) const { return view_as(infer_shape(dims)); }
  Tensor reshape(const Shape& shape) const { return view_as(shape); }
  Tensor view(std::initializer_list<index_t> dims) const { return view_as(infer_shape(dims)); }

  // Rows [begin, end) of the first axis (no copy): a sub-batch.
  Tensor slice(index_t begin, index_t end) const {
    require_defined("slice");
    check<ShapeError>(rank() >= 1, "Tensor::slice: a scalar has no first axis");
    check<ShapeError>(0 <= begin && begin <= end && end <= shape_[0], "Tensor::slice: range [", begin, ", ", end,
                      ") is outside the first axis of shape ", shape_);
    std::vector<index_t> dims(shape_.begin(), shape_.end());
    dims[0] = end - begin;
    Tensor t = view();
    t.offset_ += begin * (shape_[0] ? numel() / shape_[0] : 0);
    t.shape_ = Shape::from_range(dims.begin(), dims.end());
    return t;
  }

  // A deep copy with its own storage.
  Tensor clone() const {
    require_defined("clone");
    Tensor t = empty(shape_);
    DeviceTraits<D>::copy_within(t.data(), data(), bytes());
    return t;
  }

  // Overwrites this tensor's elements with `src`'s (shapes must match).
  void copy_(const Tensor& src) {
    require_defined("copy_");
    check<ShapeError>(src.shape() == shape_, "Tensor::copy_: source shape ", src.shape(),
                      " differs from destination shape ", shape_);
    DeviceTraits<D>::copy_within(data(), src.data(), bytes());
  }

  void zero_() {
    require_defined("zero_");
    DeviceTraits<D>::zero(data(), bytes());
  }

  void fill_(T value) {
    require_defined("fill_");
    std::vector<T> host(static_cast<std::size_t>(numel()), value);
    DeviceTraits<D>::copy_from_host(data(), host.data(), bytes());
  }

  // This tensor on device D2 (PyTorch's `.to(device)`): a view when it is
  // already there; otherwise a copy. Host-to-device copies are asynchronous
  // (staged through pinned memory, on a copy stream, ordered before the
  // kernels that read them); device-to-host copies wait for the data.
  template <class D2>
  Tensor<T, D2> to() const {
    require_defined("to");
    if constexpr (std::is_same_v<D, D2>) {
      return view();
    } else if constexpr (is_cpu_v<D>) {
      Tensor<T, D2> t;
      t.shape_ = shape_;
      t.storage_ =
          std::make_shared<detail::Storage<T, D2>>(shape_.numel(), typename detail::Storage<T, D2>::ForUpload{});
      DeviceTraits<D2>::upload(t.data(), data(), bytes());
      return t;
    } else {
      static_assert(is_cpu_v<D2>, "Tensor::to: copy between two accelerators through the CPU");
      auto t = Tensor<T, D2>::empty(shape_);
      DeviceTraits<D>::copy_to_host(t.data(), data(), bytes());
      return t;
    }
  }
  Tensor<T, Cpu> cpu() const { return to<Cpu>(); }

  // The elements in row-major order, copied to the host.
  std::vector<T> to_vector() const {
    std::vector<T> out(static_cast<std::size_t>(numel()));
    if (defined()) DeviceTraits<D>::copy_to_host(out.data(), data(), bytes());
    return out;
  }

  // ---- element access (CPU only; for tests and glue, not kernels) ----------

  template <class... I>
  T& operator()(I... idx) requires is_cpu_v<D> &&(sizeof...(I) >= 1) {
    return data()[flat_index(false, static_cast<index_t>(idx)...)];
  }
  template <class... I>
  const T& operator()(I... idx) const requires is_cpu_v<D> &&(sizeof...(I) >= 1) {
    return data()[flat_index(false, static_cast<index_t>(idx)...)];
  }
  // As operator(), but checks rank and every index.
  template <class... I>
  T& at(I... idx) requires is_cpu_v<D> {
    return data()[flat_index(true, static_cast<index_t>(idx)...)];
  }
  template <class... I>
  const T& at(I... idx) const requires is_cpu_v<D> {
    return data()[flat_index(true, static_cast<index_t>(idx)...)];
  }
  // Element by row-major position.
  T& operator[](index_t i) requires is_cpu_v<D> { return data()[i]; }
  const T& operator[](index_t i) const requires is_cpu_v<D> { return data()[i]; }

  T item() const {
    check<ShapeError>(numel() == 1, "Tensor::item: tensor of shape ", shape_, " has ", numel(), " elements, not one");
    T v;
    DeviceTraits<D>::copy_to_host(&v, data(), sizeof(T));
    return v;
  }

  // "Tensor(shape=(2, 3), dtype=float32, device=cpu)" followed by the values,
  // nested by axis and elided in the middle when there are many.
  std::string to_string(index_t edge_items = 3) const {
    std::ostringstream os;
    os << "Tensor(shape=" << shape_ << ", dtype=" << dtype_name<T>() << ", device=" << D::name << ")";
    if (!defined()) return os.str() + " [undefined]";
    const std::vector<T> v = to_vector();
    os << "\n";
    print_axis(os, v, 0, 0, edge_items);
    return os.str();
  }

  friend std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

 private:
  template <class, class>
  friend class Tensor;  // to<D2>() builds tensors of other devices

  static Tensor from_host(const Shape& shape, const T* src) {
    Tensor t = empty(shape);
    DeviceTraits<D>::copy_from_host(t.data(), src, t.bytes());
    return t;
  }

  void require_defined(const char* what) const {
    check<Error>(defined(), "Tensor::", what, ": tensor is undefined (default-constructed or moved from)");
  }

  Shape infer_shape(std::initializer_list<index_t> dims) const {
    std::vector<index_t> out(dims);
    index_t known = 1;
    int inferred = -1;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i] == -1) {
        check<ShapeError>(inferred < 0, "Tensor::reshape: only one extent may be -1");
        inferred = static_cast<int>(i);
      } else {
        check<ShapeError>(out[i] >= 0, "Tensor::reshape: negative extent ", out[i]);
        known *= out[i];
      }
    }
    if (inferred >= 0) {
      check<ShapeError>(known > 0 && numel() % known == 0, "Tensor::reshape: cannot infer the -1 extent to view ",
                        numel(), " elements of shape ", shape_);
      out[inferred] = numel() / known;
    }
    return Shape::from_range(out.begin(), out.end());
  }

  Tensor view_as(const Shape& shape) const {
    require_defined("reshape");
    check<ShapeError>(shape.numel() == numel(), "Tensor::reshape: cannot view shape ", shape_, " (", numel(),
                      " elements) as ", shape, " (", shape.numel(), " elements)");
    Tensor t = view();
    t.shape_ = shape;
    return t;
  }

  template <class... I>
  index_t flat_index(bool checked, I... idx) const {
    const index_t indices[] = {idx...};
    constexpr int n = sizeof...(I);
    if (checked) {
      require_defined("at");
      check<ShapeError>(n == rank(), "Tensor::at: ", n, " indices given for a tensor of rank ", rank());
      for (int i = 0; i < n; ++i)
        check<ShapeError>(indices[i] >= 0 && indices[i] < shape_[i], "Tensor::at: index ", indices[i],
                          " out of range for axis ", i, " of shape ", shape_);
    }
    index_t flat = 0;
    for (int i = 0; i < n; ++i) flat = flat * shape_.begin()[i] + indices[i];
    return flat;
  }

  void print_axis(std::ostream& os, const std::vector<T>& v, int axis, index_t base, index_t edge) const {
    if (rank() == 0) {
      os << +v[0];
      return;
    }
    const index_t n = shape_[axis];
    index_t stride = 1;
    for (int a = axis + 1; a < rank(); ++a) stride *= shape_[a];
    os << "[";
    for (index_t i = 0; i < n; ++i) {
      if (n > 2 * edge && i == edge) {
        os << (axis + 1 == rank() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(axis + 1), ' '));
        i = n - edge - 1;
        continue;
      }
      if (axis + 1 == rank()) {
        os << std::setprecision(6) << +v[static_cast<std::size_t>(base + i)];
      } else {
        print_axis(os, v, axis + 1, base + i * stride, edge);
      }
      if (i + 1 < n) os << (axis + 1 == rank() ? ", " : ",\n" + std::string(static_cast<std::size_t>(axis + 1), ' '));
    }
    os << "]";
  }

  std::shared_ptr<detail::Storage<T, D>> storage_;
  index_t offset_ = 0;
  Shape shape_;
};

// Checks that a tensor has the given rank; names the operation and argument.
template <class T, class D>
void check_rank(const Tensor<T, D>& t, int rank, const char* op, const char* arg) {
  check<ShapeError>(t.defined(), op, ": ", arg, " is undefined");
  check<ShapeError>(t.rank() == rank, op, ": expected ", arg, " of rank ", rank, ", got shape ", t.shape());
}

}  // namespace rescnn
