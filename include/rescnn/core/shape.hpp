// rescnn/core/shape.hpp — tensor extents, rank 0 to 4 (NCHW convention).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>

#include "rescnn/core/error.hpp"

namespace rescnn {

using index_t = std::int64_t;

class Shape {
 public:
  static constexpr int kMaxRank = 4;

  Shape() = default;  // rank 0: a scalar with one element

  Shape(std::initializer_list<index_t> dims) {
    check<ShapeError>(dims.size() <= kMaxRank, "Shape: rank ", dims.size(), " exceeds the maximum rank ", kMaxRank);
    for (index_t d : dims) {
      check<ShapeError>(d >= 0, "Shape: negative extent ", d, " in ", format(dims));
      dims_[rank_++] = d;
    }
  }

  // Builds a shape from the first `rank` entries of an array (rank checked).
  template <class It>
  static Shape from_range(It first, It last) {
    Shape s;
    for (; first != last; ++first) {
      check<ShapeError>(s.rank_ < kMaxRank, "Shape: rank exceeds the maximum rank ", kMaxRank);
      check<ShapeError>(*first >= 0, "Shape: negative extent ", *first);
      s.dims_[s.rank_++] = static_cast<index_t>(*first);
    }
    return s;
  }

  int rank() const { return rank_; }

  index_t operator[](int axis) const {
    check<ShapeError>(axis >= 0 && axis < rank_, "Shape: axis ", axis, " out of range for ", to_string());
    return dims_[axis];
  }

  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }

  const index_t* begin() const { return dims_.data(); }
  const index_t* end() const { return dims_.data() + rank_; }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

  // "(2, 3, 5, 7)", the form PyTorch prints for torch.Size.
  std::string to_string() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + ")";
  }

  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.to_string(); }

 private:
  static std::string format(std::initializer_list<index_t> dims) {
    std::string s = "(";
    bool first = true;
    for (index_t d : dims) {
      if (!first) s += ", ";
      s += std::to_string(d);
      first = false;
    }
    return s + ")";
  }

  std::array<index_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace rescnn
