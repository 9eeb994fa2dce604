// rescnn/io/state_dict.hpp — a model's weights and buffers as a safetensors
// file, named and laid out as PyTorch's `model.state_dict()`.
//
// The tensor names are the model's dotted names ("layer1.0.conv1.weight",
// "bn1.running_mean"), which for the torchvision family are torchvision's, so
//   save(model, "resnet18.safetensors")
// writes a file that `safetensors.torch.load_file` + `load_state_dict` read in
// PyTorch, and a file exported from PyTorch the same way loads here.
// BatchNorm's `num_batches_tracked` is written as PyTorch writes it (an int64
// scalar); on loading it is optional, as PyTorch's BatchNorm treats it for
// files written before it existed.
//
// Models on any device save and load the same files: a GPU model's tensors
// travel through the host, so a checkpoint written by a CUDA run resumes on
// the CPU and the other way round.
//
// Loading validates the whole file against the model before changing
// anything: a missing or unexpected name, a shape or a dtype that does not
// match leaves the model as it was and throws naming the entries.
#pragma once

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "rescnn/core/half.hpp"
#include "rescnn/io/safetensors.hpp"
#include "rescnn/nn/batchnorm2d.hpp"
#include "rescnn/nn/module.hpp"

namespace rescnn::io {

namespace detail {

// Visits every module of the tree with its dotted prefix ("" for the root,
// "layer1.0." for a child of a child).
template <class T, class D, class Fn>
void for_each_module(nn::Module<T, D>& m, const std::string& prefix, Fn&& fn) {
  fn(prefix, m);
  for (auto& [name, child] : m.named_children()) for_each_module(*child, prefix + name + ".", fn);
}

// The BatchNorm counters, by state-dict name ("bn1.num_batches_tracked").
template <class T, class D>
std::vector<std::pair<std::string, std::int64_t*>> batch_counters(nn::Module<T, D>& model) {
  std::vector<std::pair<std::string, std::int64_t*>> out;
  for_each_module(model, "", [&](const std::string& prefix, nn::Module<T, D>& m) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d<T, D>*>(&m); bn && bn->options().track_running_stats && !bn->folded())
      out.emplace_back(prefix + "num_batches_tracked", &bn->num_batches_tracked);
  });
  return out;
}

// Up to `limit` names joined with ", ", then "and N more".
inline std::string list_names(const std::vector<std::string>& names, std::size_t limit = 6) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + ("'" + names[i] + "'");
  if (names.size() > limit) s += rescnn::detail::concat(" and ", names.size() - limit, " more");
  return s;
}

inline std::vector<std::int64_t> extents(const Shape& shape) { return {shape.begin(), shape.end()}; }

// Whether a record's extents are exactly `shape`.
inline bool same_extents(const TensorRecord& rec, const Shape& shape) {
  if (rec.shape.size() != static_cast<std::size_t>(shape.rank())) return false;
  for (int i = 0; i < shape.rank(); ++i)
    if (rec.shape[static_cast<std::size_t>(i)] != shape[i]) return false;
  return true;
}

// Whether a record holds floating-point values a model can load.
inline bool is_loadable_floating(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::BF16 || d == DType::F16;
}

// Copies a floating-point record into `dst` (numel elements of T), converting
// between F32 and F64 as torch's copy_ would, and widening BF16 and F16
// (exactly: every such value is a float); other dtypes are rejected.
template <class T>
void copy_floating_to_host(const TensorRecord& rec, T* dst) {
  const std::size_t n = rec.bytes.size() / itemsize(rec.dtype);
  if (rec.dtype == DType::BF16 || rec.dtype == DType::F16) {
    widen_16bit(rec, dst);
  } else if (rec.dtype == DType::F32) {
    std::vector<float> tmp(n);
    if (n) std::memcpy(tmp.data(), rec.bytes.data(), rec.bytes.size());
    std::transform(tmp.begin(), tmp.end(), dst, [](float v) { return static_cast<T>(v); });
  } else {
    std::vector<double> tmp(n);
    if (n) std::memcpy(tmp.data(), rec.bytes.data(), rec.bytes.size());
    std::transform(tmp.begin(), tmp.end(), dst, [](double v) { return static_cast<T>(v); });
  }
}

// As copy_floating_to_host into a tensor of any device (through the host).
template <class T, class D>
void copy_floating(const TensorRecord& rec, Tensor<T, D>& dst) {
  if constexpr (is_cpu_v<D>) {
    copy_floating_to_host(rec, dst.data());
  } else {
    std::vector<T> host(static_cast<std::size_t>(dst.numel()));
    copy_floating_to_host(rec, host.data());
    DeviceTraits<D>::copy_from_host(dst.data(), host.data(), dst.bytes());
  }
}

}  // namespace detail

// Tensor names that belong to training state, not to the model; they are
// skipped when a checkpoint is loaded as a plain state dict: the
// optimizer's state, and what else the trainer keeps (its weight average).
inline constexpr std::string_view kOptimizerPrefix = "optimizer.";
inline constexpr std::string_view kTrainingStatePrefix = "training.";

namespace detail {
inline bool is_training_state(const std::string& name) {
  return name.rfind(kOptimizerPrefix, 0) == 0 || name.rfind(kTrainingStatePrefix, 0) == 0;
}
}  // namespace detail

struct SaveOptions {
  // The dtype of the floating-point tensors in the file: empty for the
  // model's own (F32 for a float model); BF16 or F16 halve the file,
  // rounding each value to nearest even (as torch's .to(torch.bfloat16)).
  // A finite value beyond F16's range (65504) is an error, not an infinity.
  std::optional<DType> dtype{};
};

// The model's parameters, buffers and BatchNorm counters.
template <class T, class D>
SafeTensors state_dict(nn::Module<T, D>& model, const SaveOptions& options = {}) {
  SafeTensors st;
  const DType dtype = options.dtype.value_or(dtype_of<T>());
  for (auto& [name, p] : model.named_parameters()) st.add_as(name, p->value, dtype);
  for (auto& [name, b] : model.named_buffers()) st.add_as(name, *b, dtype);
  for (auto& [name, counter] : detail::batch_counters(model)) {
    const std::int64_t value = *counter;
    st.add(name, DType::I64, {}, std::as_bytes(std::span<const std::int64_t>(&value, 1)));
  }
  return st;
}

struct LoadOptions {
  // Require the file's names to be exactly the model's (PyTorch's strict=True).
  // When false, missing and unexpected names are ignored; shapes and dtypes of
  // the names both have must still match.
  bool strict = true;
  // Names starting with one of these are neither loaded nor required, in the
  // file or the model: {"fc."} loads a backbone into a model with a new head
  // (torchvision weights into resnet18(num_classes = 2)).
  std::vector<std::string> exclude{};
};

// What load_state_dict did, to tell the user (summary()).
struct LoadReport {
  std::string source;
  std::size_t loaded = 0;
  std::vector<std::string> excluded;    // skipped by LoadOptions::exclude (file or model names)
  std::vector<std::string> missing;     // in the model, not in the file (strict = false)
  std::vector<std::string> unexpected;  // in the file, not in the model (strict = false)

  std::string summary() const {
    std::string s = rescnn::detail::concat("loaded ", loaded, " tensors from '", source, "'");
    if (!excluded.empty())
      s += rescnn::detail::concat("; skipped ", excluded.size(), " (excluded): ", detail::list_names(excluded, 8));
    if (!missing.empty())
      s += rescnn::detail::concat("; ", missing.size(),
                                  " not in the file (left as they were): ", detail::list_names(missing, 8));
    if (!unexpected.empty())
      s += rescnn::detail::concat("; ", unexpected.size(), " in the file unused: ", detail::list_names(unexpected, 8));
    return s;
  }
};

// Copies the file's tensors into the model; see the top of this header.
template <class T, class D>
LoadReport load_state_dict(nn::Module<T, D>& model, const SafeTensors& file, const LoadOptions& options = {}) {
  const std::string where = "load_state_dict from '" + file.source() + "': ";
  LoadReport report;
  report.source = file.source();
  const auto excluded = [&](const std::string& name) {
    for (const auto& prefix : options.exclude)
      if (name.rfind(prefix, 0) == 0) return true;
    return false;
  };

  std::vector<std::pair<std::string, Tensor<T, D>*>> targets;
  std::set<std::string> excluded_names;
  for (auto& [name, p] : model.named_parameters())
    (excluded(name) ? (void)excluded_names.insert(name) : (void)targets.emplace_back(name, &p->value));
  for (auto& [name, b] : model.named_buffers())
    (excluded(name) ? (void)excluded_names.insert(name) : (void)targets.emplace_back(name, b));
  auto counters = detail::batch_counters(model);
  std::erase_if(counters, [&](const auto& c) { return excluded(c.first); });
  for (const std::string& name : file.names())
    if (excluded(name)) excluded_names.insert(name);
  report.excluded.assign(excluded_names.begin(), excluded_names.end());

  // 1. Names: everything the model has must be there (counters optional),
  //    nothing else may be (training state of a checkpoint aside).
  std::set<std::string> known;
  std::vector<std::string> missing, unexpected, problems;
  for (auto& [name, t] : targets) {
    known.insert(name);
    if (!file.contains(name)) missing.push_back(name);
  }
  for (auto& [name, c] : counters) known.insert(name);
  for (const std::string& name : file.names())
    if (!known.count(name) && !excluded(name) && !detail::is_training_state(name)) unexpected.push_back(name);
  if (options.strict && (!missing.empty() || !unexpected.empty())) {
    std::string msg = where + "the file does not match the model (" + model.type_name() + ")";
    if (!missing.empty())
      msg += rescnn::detail::concat("; missing ", missing.size(), ": ", detail::list_names(missing));
    if (!unexpected.empty())
      msg += rescnn::detail::concat("; unexpected ", unexpected.size(), ": ", detail::list_names(unexpected));
    throw IoError(msg);
  }

  // 2. Shapes and dtypes of everything present, before anything is written.
  for (auto& [name, t] : targets) {
    if (!file.contains(name)) continue;
    const TensorRecord& rec = file.record(name);
    if (!detail::is_loadable_floating(rec.dtype))
      problems.push_back(rescnn::detail::concat("'", name, "' has dtype ", to_string(rec.dtype),
                                                " (a floating-point F32, F64, BF16 or F16 tensor is needed)"));
    else if (!detail::same_extents(rec, t->shape()))
      problems.push_back(rescnn::detail::concat(
          "'", name, "' has shape ", rescnn::io::detail::format_dims(rec.shape), " in the file but ",
          rescnn::io::detail::format_dims(detail::extents(t->shape())), " in the model"));
  }
  for (auto& [name, c] : counters) {
    if (!file.contains(name)) continue;
    const TensorRecord& rec = file.record(name);
    if (rec.dtype != DType::I64 || rec.bytes.size() != sizeof(std::int64_t))
      problems.push_back(rescnn::detail::concat("'", name, "' must be an int64 scalar, found ", to_string(rec.dtype),
                                                " with shape ", rescnn::io::detail::format_dims(rec.shape)));
  }
  if (!problems.empty()) {
    std::string msg = where + "the file does not match the model (" + model.type_name() + "): ";
    for (std::size_t i = 0; i < problems.size() && i < 6; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > 6) msg += rescnn::detail::concat("; and ", problems.size() - 6, " more");
    throw ShapeError(msg);
  }

  // 3. Copy.
  for (auto& [name, t] : targets)
    if (file.contains(name)) {
      detail::copy_floating(file.record(name), *t);
      ++report.loaded;
    }
  for (auto& [name, c] : counters)
    if (file.contains(name)) std::memcpy(c, file.record(name).bytes.data(), sizeof(std::int64_t));
  report.missing = std::move(missing);
  report.unexpected = std::move(unexpected);
  return report;
}

// Writes the model's state dict atomically (see SafeTensors::save).
template <class T, class D>
void save(nn::Module<T, D>& model, const std::filesystem::path& file, const SaveOptions& options = {}) {
  SafeTensors st = state_dict(model, options);
  st.set_metadata("format", "pt");  // what safetensors.torch.save_file writes
  st.save(file);
}

// Reads a state dict (or the model part of a checkpoint) into the model.
template <class T, class D>
LoadReport load(nn::Module<T, D>& model, const std::filesystem::path& file, const LoadOptions& options = {}) {
  return load_state_dict(model, SafeTensors::load(file), options);
}

}  // namespace rescnn::io
