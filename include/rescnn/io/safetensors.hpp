// rescnn/io/safetensors.hpp — read and write the safetensors format.
//
// The format (https://github.com/huggingface/safetensors):
//   8 bytes      little-endian u64 N, the length of the header
//   N bytes      UTF-8 JSON object: {"name": {"dtype": "F32", "shape": [2, 3],
//                "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
//                starting with '{', possibly padded with trailing spaces
//   the rest     the data buffer; offsets are relative to its first byte
// Values are stored little-endian and row-major.
//
// `SafeTensors` is the whole file held in memory: `load`/`parse` validate
// everything up front (a hostile or truncated file throws IoError naming the
// file and the problem; nothing is read out of bounds), `tensor<T>()` copies a
// record into a Tensor, `add`/`set_metadata`/`save` build and write a file.
//
// Validation, as the reference implementation does it:
//  - the header length is at most 100 MiB and fits inside the file;
//  - the header is strict JSON (rescnn/io/json.hpp) starting with '{';
//  - every entry has exactly dtype, shape, data_offsets; the dtype is known;
//    the shape's element count times the item size does not overflow and
//    equals end - begin;
//  - the tensors' byte ranges, sorted, tile the data buffer exactly: no
//    overlaps, no gaps, nothing past the end and nothing left over.
//
// Layout when writing: the header is padded with spaces to a multiple of 8
// bytes, so the data buffer starts 8-byte aligned in the file. Tensors are
// laid out in order of decreasing item size, then by name (as the Python
// `safetensors` package does), and packed without gaps, which the format
// requires; since every tensor's size is a multiple of its item size, each
// tensor then starts at an offset aligned to its own element type (so the
// file can be memory-mapped and read in place). The header lists tensors by
// name.
//
// `save` is atomic (io/atomic_write.hpp): the target is either the old file
// or the complete new one, never a mixture.
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "rescnn/core/device.hpp"
#include "rescnn/core/error.hpp"
#include "rescnn/core/half.hpp"
#include "rescnn/core/shape.hpp"
#include "rescnn/core/tensor.hpp"
#include "rescnn/io/atomic_write.hpp"
#include "rescnn/io/json.hpp"

namespace rescnn::io {

static_assert(std::endian::native == std::endian::little,
              "rescnn::io::SafeTensors copies tensor bytes as stored; it needs a little-endian host");

// Element types of the safetensors format. Every one is parsed and kept as
// raw bytes; `SafeTensors::tensor<T>()` converts F32, F64, I64, I32 and U8,
// and models load F32, F64, BF16 and F16 (state_dict.hpp); add_as() writes
// floating-point tensors as any of those four.
enum class DType { F32, F64, I64, I32, U8, F16, BF16, BOOL, I8, I16, U16, U32, U64, F8_E5M2, F8_E4M3 };

inline constexpr DType kAllDTypes[] = {DType::F32, DType::F64,  DType::I64,  DType::I32,     DType::U8,
                                       DType::F16, DType::BF16, DType::BOOL, DType::I8,      DType::I16,
                                       DType::U16, DType::U32,  DType::U64,  DType::F8_E5M2, DType::F8_E4M3};

// The name used in files: "F32", "BF16", ...
inline constexpr std::string_view to_string(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::BOOL: return "BOOL";
    case DType::I8: return "I8";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::U32: return "U32";
    case DType::U64: return "U64";
    case DType::F8_E5M2: return "F8_E5M2";
    case DType::F8_E4M3: return "F8_E4M3";
  }
  return "?";
}

// Bytes per element.
inline constexpr std::size_t itemsize(DType d) {
  switch (d) {
    case DType::F64:
    case DType::I64:
    case DType::U64: return 8;
    case DType::F32:
    case DType::I32:
    case DType::U32: return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
    case DType::U16: return 2;
    case DType::U8:
    case DType::BOOL:
    case DType::I8:
    case DType::F8_E5M2:
    case DType::F8_E4M3: return 1;
  }
  return 0;
}

// "F32" -> DType::F32; nullopt for a name the format does not define.
inline std::optional<DType> parse_dtype(std::string_view name) {
  for (DType d : kAllDTypes)
    if (to_string(d) == name) return d;
  return std::nullopt;
}

// The DType that stores C++ type T exactly (float <-> F32, ...).
template <class T>
inline constexpr bool has_dtype_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::uint8_t>;

template <class T>
constexpr DType dtype_of() {
  static_assert(has_dtype_v<T>,
                "rescnn::io: no safetensors dtype for this element type "
                "(supported: float, double, int64_t, int32_t, uint8_t)");
  if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::I32;
  else
    return DType::U8;
}

// One tensor of a file: its type, extents (any rank) and raw little-endian
// row-major bytes.
struct TensorRecord {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
};

namespace detail {

inline std::string format_dims(const std::vector<std::int64_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + (dims.size() == 1 ? ",)" : ")");
}

// a * b, or nullopt when it exceeds `limit`.
inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b,
                                                std::uint64_t limit = std::numeric_limits<std::uint64_t>::max()) {
  if (a != 0 && b > limit / a) return std::nullopt;
  return a * b;
}

// Byte count of `shape` elements of `dtype`; nullopt on overflow (element
// counts are kept below 2^63 so they fit in index_t).
inline std::optional<std::uint64_t> byte_size(DType dtype, const std::vector<std::int64_t>& shape) {
  constexpr std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const auto next = checked_mul(n, static_cast<std::uint64_t>(d), limit);
    if (!next) return std::nullopt;
    n = *next;
  }
  return checked_mul(n, itemsize(dtype), limit);
}

// The values of a BF16 or F16 record, widened (exactly) to float and cast
// to T, into dst (numel elements).
template <class T>
void widen_16bit(const TensorRecord& rec, T* dst) {
  std::vector<std::uint16_t> bits(rec.bytes.size() / 2);
  if (!bits.empty()) std::memcpy(bits.data(), rec.bytes.data(), rec.bytes.size());
  const bool bf16 = rec.dtype == DType::BF16;
  for (std::size_t i = 0; i < bits.size(); ++i)
    dst[i] = static_cast<T>(bf16 ? bf16_bits_to_float(bits[i]) : half_bits_to_float(bits[i]));
}

}  // namespace detail

class SafeTensors {
 public:
  // Headers longer than this are rejected before anything is allocated.
  static constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;  // 100 MiB

  SafeTensors() = default;

  // Reads and validates a whole file.
  static SafeTensors load(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    const std::string name = file.string();
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec);
    check<IoError>(st.type() != fs::file_type::not_found, "safetensors: cannot load '", name, "': no such file");
    check<IoError>(!ec, "safetensors: cannot load '", name, "': ", ec.message());
    check<IoError>(st.type() != fs::file_type::directory, "safetensors: cannot load '", name, "': it is a directory");

    std::ifstream in(file, std::ios::binary);
    check<IoError>(in.is_open(), "safetensors: cannot open '", name, "': ", detail::errno_text(errno));
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    check<IoError>(size >= 0, "safetensors: cannot determine the size of '", name, "'");
    in.seekg(0, std::ios::beg);
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), size);
    check<IoError>(in.good() || (size == 0 && !in.bad()), "safetensors: cannot read '", name, "': read ", in.gcount(),
                   " of ", size, " bytes");
    return parse(bytes, name);
  }

  // Validates an in-memory file; `source_name` names it in error messages.
  static SafeTensors parse(std::span<const std::byte> bytes, const std::string& source_name) {
    SafeTensors st;
    st.source_ = source_name;
    const std::string where = "safetensors '" + source_name + "': ";

    check<IoError>(bytes.size() >= 8, where, "file is ", bytes.size(),
                   " bytes, too short for the 8-byte header length (truncated header length)");
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    check<IoError>(n <= kMaxHeaderBytes, where, "header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
                   " bytes (100 MiB); the file is corrupt or not a safetensors file");
    const std::uint64_t rest = bytes.size() - 8;
    check<IoError>(n <= rest, where, "header length ", n, " exceeds the file: only ", rest,
                   " bytes follow the length field (truncated file?)");
    const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<std::size_t>(n));
    check<IoError>(!header.empty() && header.front() == '{', where,
                   "header does not start with '{' (not a JSON object)");

    json::Value root;
    try {
      root = json::parse(header);
    } catch (const json::ParseError& e) {
      throw IoError(where + "header is not valid JSON: " + e.what());
    }
    check<IoError>(root.is_object(), where, "header JSON is not an object");

    const std::span<const std::byte> buffer = bytes.subspan(8 + static_cast<std::size_t>(n));
    const std::uint64_t buffer_size = buffer.size();

    struct Extent {
      std::uint64_t begin, end;
      const std::string* name;
    };
    std::vector<Extent> extents;
    std::vector<std::pair<const std::string*, TensorRecord>> records;

    for (const auto& [key, value] : root.as_object()) {
      if (key == "__metadata__") {
        check<IoError>(value.is_object(), where, "\"__metadata__\" is ", value.describe(), ", not an object");
        for (const auto& [mk, mv] : value.as_object()) {
          check<IoError>(mv.is_string(), where, "metadata value for key '", mk, "' is ", mv.describe(),
                         ", not a string");
          st.metadata_.emplace(mk, mv.as_string());
        }
        continue;
      }
      const std::string what = where + "tensor '" + key + "': ";
      check<IoError>(value.is_object(), what, "entry is ", value.describe(), ", not an object");
      const json::Value* dtype_v = nullptr;
      const json::Value* shape_v = nullptr;
      const json::Value* offsets_v = nullptr;
      for (const auto& [field, fv] : value.as_object()) {
        if (field == "dtype")
          dtype_v = &fv;
        else if (field == "shape")
          shape_v = &fv;
        else if (field == "data_offsets")
          offsets_v = &fv;
        else
          throw IoError(what + "unexpected field '" + field + "'");
      }
      check<IoError>(dtype_v && shape_v && offsets_v, what, "missing field '",
                     !dtype_v   ? "dtype"
                     : !shape_v ? "shape"
                                : "data_offsets",
                     "'");

      check<IoError>(dtype_v->is_string(), what, "dtype is ", dtype_v->describe(), ", not a string");
      const std::optional<DType> dtype = parse_dtype(dtype_v->as_string());
      check<IoError>(dtype.has_value(), what, "unknown dtype '", dtype_v->as_string(), "'");

      check<IoError>(shape_v->is_array(), what, "shape is ", shape_v->describe(), ", not an array");
      TensorRecord rec;
      rec.dtype = *dtype;
      for (const json::Value& d : shape_v->as_array()) {
        check<IoError>(d.is_int() && d.as_int() >= 0, what, "shape has an entry that is not a non-negative integer");
        rec.shape.push_back(d.as_int());
      }
      const std::optional<std::uint64_t> need = detail::byte_size(rec.dtype, rec.shape);
      check<IoError>(need.has_value(), what, "shape ", detail::format_dims(rec.shape), " of dtype ",
                     to_string(rec.dtype), " overflows: its byte size does not fit in 63 bits");

      check<IoError>(offsets_v->is_array() && offsets_v->as_array().size() == 2, what,
                     "data_offsets must be an array of two integers [begin, end]");
      const json::Value& b = offsets_v->as_array()[0];
      const json::Value& e = offsets_v->as_array()[1];
      check<IoError>(b.is_int() && e.is_int() && b.as_int() >= 0 && e.as_int() >= 0, what,
                     "data_offsets must be non-negative integers");
      const auto begin = static_cast<std::uint64_t>(b.as_int());
      const auto end = static_cast<std::uint64_t>(e.as_int());
      check<IoError>(begin <= end && end <= buffer_size, what, "data_offsets [", begin, ", ", end,
                     "] out of range for the data buffer of ", buffer_size, " bytes");
      check<IoError>(end - begin == *need, what, "size mismatch: data_offsets [", begin, ", ", end, "] span ",
                     end - begin, " bytes but dtype ", to_string(rec.dtype), " with shape ",
                     detail::format_dims(rec.shape), " needs ", *need, " bytes");
      const auto first = buffer.begin() + static_cast<std::ptrdiff_t>(begin);
      rec.bytes.assign(first, first + static_cast<std::ptrdiff_t>(end - begin));
      extents.push_back({begin, end, &key});
      records.emplace_back(&key, std::move(rec));
    }

    // The byte ranges must tile the buffer: sorted, each starts where the
    // previous one ended, and the last ends at the end of the file.
    std::sort(extents.begin(), extents.end(),
              [](const Extent& x, const Extent& y) { return x.begin != y.begin ? x.begin < y.begin : x.end < y.end; });
    std::uint64_t covered = 0;
    const std::string* previous = nullptr;
    for (const Extent& x : extents) {
      check<IoError>(x.begin >= covered, where, "data_offsets of tensor '", *x.name, "' [", x.begin, ", ", x.end,
                     "] overlap tensor '", previous ? *previous : std::string(), "' which ends at ", covered);
      check<IoError>(x.begin == covered, where, "data buffer has a gap: bytes [", covered, ", ", x.begin,
                     ") before tensor '", *x.name, "' belong to no tensor");
      covered = x.end;
      previous = x.name;
    }
    check<IoError>(covered == buffer_size, where, "data buffer has ", buffer_size, " bytes but the tensors cover ",
                   covered, " (", buffer_size - covered, " trailing bytes belong to no tensor)");

    for (auto& [name, rec] : records) st.records_.emplace(*name, std::move(rec));
    return st;
  }

  // ---- reading ---------------------------------------------------------------

  // The file this came from ("<memory>" for one built in code).
  const std::string& source() const { return source_; }

  bool contains(const std::string& name) const { return records_.count(name) != 0; }
  std::size_t size() const { return records_.size(); }

  // Tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(records_.size());
    for (const auto& [name, rec] : records_) out.push_back(name);
    return out;
  }

  const TensorRecord& record(const std::string& name) const {
    const auto it = records_.find(name);
    if (it == records_.end()) {
      std::string known;
      std::size_t shown = 0;
      for (const auto& [n, r] : records_) {
        if (shown == 8) {
          known += ", ...";
          break;
        }
        known += (shown++ ? ", " : "") + n;
      }
      throw IoError(rescnn::detail::concat("safetensors '", source_, "': no tensor named '", name, "' (it holds ",
                                           records_.size(), " tensors", records_.empty() ? "" : ": ", known, ")"));
    }
    return it->second;
  }

  // A copy of tensor `name` as Tensor<T>. The stored dtype must be exactly
  // T's (no silent conversion), except that float also reads BF16 and F16,
  // which widen to float exactly; the rank must be at most 4.
  template <class T>
  Tensor<T, Cpu> tensor(const std::string& name) const {
    const TensorRecord& rec = record(name);
    if constexpr (std::is_same_v<T, float>) {
      if (rec.dtype == DType::BF16 || rec.dtype == DType::F16) {
        Tensor<T, Cpu> t = Tensor<T, Cpu>::empty(checked_shape(name, rec));
        detail::widen_16bit(rec, t.data());
        return t;
      }
    }
    check<IoError>(rec.dtype == dtype_of<T>(), "safetensors '", source_, "': tensor '", name, "' has dtype ",
                   to_string(rec.dtype), ", but ", to_string(dtype_of<T>()), " (", dtype_name<T>(), ") was requested");
    Tensor<T, Cpu> t = Tensor<T, Cpu>::empty(checked_shape(name, rec));
    if (!rec.bytes.empty()) std::memcpy(t.data(), rec.bytes.data(), rec.bytes.size());
    return t;
  }

  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Shape checked_shape(const std::string& name, const TensorRecord& rec) const {
    check<IoError>(rec.shape.size() <= static_cast<std::size_t>(Shape::kMaxRank), "safetensors '", source_,
                   "': tensor '", name, "' has rank ", rec.shape.size(), " (shape ", detail::format_dims(rec.shape),
                   "); rescnn tensors have rank at most ", Shape::kMaxRank);
    return Shape::from_range(rec.shape.begin(), rec.shape.end());
  }

 public:
  std::string meta(const std::string& key) const {
    const auto it = metadata_.find(key);
    check<IoError>(it != metadata_.end(), "safetensors '", source_, "': no metadata key '", key, "'");
    return it->second;
  }

  // ---- building ----------------------------------------------------------------

  // Adds a tensor from raw little-endian row-major bytes. Throws ValueError for
  // an empty, reserved, non-UTF-8 or already present name, a negative extent,
  // or a byte count that does not match dtype and shape.
  void add(const std::string& name, DType dtype, std::vector<std::int64_t> shape, std::span<const std::byte> bytes) {
    check<ValueError>(!name.empty(), "SafeTensors::add: the tensor name is empty");
    check<ValueError>(name != "__metadata__", "SafeTensors::add: the name \"__metadata__\" is reserved");
    check<ValueError>(json::is_valid_utf8(name), "SafeTensors::add: tensor name is not valid UTF-8");
    check<ValueError>(!contains(name), "SafeTensors::add: a tensor named '", name,
                      "' is already present (erase() it first to replace it)");
    for (std::int64_t d : shape)
      check<ValueError>(d >= 0, "SafeTensors::add: tensor '", name, "' has negative extent ", d, " in shape ",
                        detail::format_dims(shape));
    const std::optional<std::uint64_t> need = detail::byte_size(dtype, shape);
    check<ValueError>(need.has_value(), "SafeTensors::add: tensor '", name, "': shape ", detail::format_dims(shape),
                      " overflows");
    check<ValueError>(bytes.size() == *need, "SafeTensors::add: tensor '", name, "' of dtype ", to_string(dtype),
                      " and shape ", detail::format_dims(shape), " needs ", *need, " bytes, got ", bytes.size());
    TensorRecord rec;
    rec.dtype = dtype;
    rec.shape = std::move(shape);
    rec.bytes.assign(bytes.begin(), bytes.end());
    records_.emplace(name, std::move(rec));
  }

  // A tensor of any device; a device tensor is copied to the host first.
  template <class T, class D>
  void add(const std::string& name, const Tensor<T, D>& t) {
    check<ValueError>(t.defined(), "SafeTensors::add: tensor '", name, "' is undefined");
    const Tensor<T, Cpu> host = t.template to<Cpu>();  // a view when already on the CPU
    std::vector<std::int64_t> shape(host.shape().begin(), host.shape().end());
    const std::span<const T> values(host.data(), static_cast<std::size_t>(host.numel()));
    add(name, dtype_of<T>(), std::move(shape), std::as_bytes(values));
  }

  // A floating-point tensor stored as `dtype` (F32, F64, BF16 or F16),
  // rounding to nearest even where it narrows. A finite value that F16
  // cannot hold is a ValueError naming the tensor (never an infinity).
  template <class T, class D>
  void add_as(const std::string& name, const Tensor<T, D>& t, DType dtype) {
    static_assert(std::is_floating_point_v<T>, "SafeTensors::add_as converts floating-point tensors");
    if (dtype == dtype_of<T>()) return add(name, t);
    check<ValueError>(t.defined(), "SafeTensors::add: tensor '", name, "' is undefined");
    check<ValueError>(dtype == DType::F32 || dtype == DType::F64 || dtype == DType::BF16 || dtype == DType::F16,
                      "SafeTensors::add_as: tensor '", name, "': cannot store floating-point values as ",
                      to_string(dtype), " (F32, F64, BF16 or F16)");
    const Tensor<T, Cpu> host = t.template to<Cpu>();
    std::vector<std::int64_t> shape(host.shape().begin(), host.shape().end());
    const auto n = static_cast<std::size_t>(host.numel());
    const T* v = host.data();
    const auto store = [&](auto converted) { add(name, dtype, std::move(shape), std::as_bytes(std::span(converted))); };
    if (dtype == DType::F32 || dtype == DType::F64) {
      if (dtype == DType::F32)
        store(std::vector<float>(v, v + n));
      else
        store(std::vector<double>(v, v + n));
      return;
    }
    std::vector<std::uint16_t> bits(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto f = static_cast<float>(v[i]);
      if (dtype == DType::BF16) {
        bits[i] = float_to_bf16_bits(f);
      } else {
        bits[i] = float_to_half_bits(f);
        if (std::isfinite(f) && (bits[i] & 0x7C00u) == 0x7C00u)
          fail("SafeTensors::add_as: tensor '", name, "' holds ", f, " (element ", i,
               "), beyond F16's range of +-65504; store it as BF16 or F32");
      }
    }
    store(std::move(bits));
  }

  // Removes tensor `name`; false when there was none.
  bool erase(const std::string& name) { return records_.erase(name) != 0; }

  // Sets (or replaces) a metadata entry.
  void set_metadata(const std::string& key, const std::string& value) {
    check<ValueError>(json::is_valid_utf8(key) && json::is_valid_utf8(value), "SafeTensors::set_metadata: key '", key,
                      "' or its value is not valid UTF-8");
    metadata_[key] = value;
  }

  // ---- writing -----------------------------------------------------------------

  // The complete file image.
  std::vector<std::byte> serialize() const {
    // Data layout: larger item sizes first, then by name (see the top).
    std::vector<const std::pair<const std::string, TensorRecord>*> order;
    order.reserve(records_.size());
    for (const auto& entry : records_) order.push_back(&entry);
    std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
      return itemsize(a->second.dtype) > itemsize(b->second.dtype);
    });
    std::map<std::string_view, std::pair<std::uint64_t, std::uint64_t>> offsets;
    std::uint64_t data_size = 0;
    for (const auto* entry : order) {
      offsets[entry->first] = {data_size, data_size + entry->second.bytes.size()};
      data_size += entry->second.bytes.size();
    }

    json::Object header;
    if (!metadata_.empty()) {
      json::Object meta;
      for (const auto& [k, v] : metadata_) meta.emplace_back(k, json::Value(v));
      header.emplace_back("__metadata__", json::Value(std::move(meta)));
    }
    for (const auto& [name, rec] : records_) {
      json::Array shape;
      for (std::int64_t d : rec.shape) shape.emplace_back(d);
      const auto [begin, end] = offsets.at(name);
      json::Object info;
      info.emplace_back("dtype", json::Value(std::string(to_string(rec.dtype))));
      info.emplace_back("shape", json::Value(std::move(shape)));
      info.emplace_back("data_offsets", json::Value(json::Array{json::Value(static_cast<std::int64_t>(begin)),
                                                                json::Value(static_cast<std::int64_t>(end))}));
      header.emplace_back(name, json::Value(std::move(info)));
    }
    std::string text = json::dump(json::Value(std::move(header)));
    text.append((8 - text.size() % 8) % 8, ' ');
    check<IoError>(text.size() <= kMaxHeaderBytes, "safetensors: header of ", text.size(),
                   " bytes exceeds the 100 MiB limit readers enforce");

    std::vector<std::byte> out(8 + text.size() + static_cast<std::size_t>(data_size));
    const std::uint64_t n = text.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* data = out.data() + 8 + text.size();
    for (const auto* entry : order) {
      const auto& bytes = entry->second.bytes;
      if (!bytes.empty()) std::memcpy(data + offsets.at(entry->first).first, bytes.data(), bytes.size());
    }
    return out;
  }

  // Writes the file atomically; throws IoError naming `file` on failure.
  void save(const std::filesystem::path& file) const {
    const std::vector<std::byte> bytes = serialize();
    detail::atomic_write(file, bytes);
  }

 private:
  std::string source_ = "<memory>";
  std::map<std::string, TensorRecord> records_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace rescnn::io
