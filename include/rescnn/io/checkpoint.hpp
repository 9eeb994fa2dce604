// rescnn/io/checkpoint.hpp — training checkpoints: everything a run needs to
// continue exactly where it stopped, in one safetensors file.
//
// Contents:
//  - the model's state dict under its own names (io/state_dict.hpp), so the
//    file also loads as plain weights, here or in PyTorch;
//  - the optimizer's state tensors as "optimizer.<parameter>.<state>"
//    ("optimizer.fc.weight.momentum_buffer");
//  - metadata: the completed epoch, the optimizer's type, step count and
//    settings, the global generator's state, and free-form entries the
//    caller adds (the trainer stores its settings there).
//
// Schedules are functions of the optimizer's step count and the data order
// is a function of (seed, epoch), so this is all a resumed run needs to
// reproduce an uninterrupted one bit for bit on the CPU.
//
// Writing is atomic (SafeTensors::save): a crash mid-write leaves the
// previous checkpoint intact. Loading validates the whole file against the
// model and optimizer before changing either.
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rescnn/core/rng.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/optim/optimizer.hpp"

namespace rescnn::io {

inline constexpr std::string_view kCheckpointFormat = "rescnn-checkpoint-1";

struct CheckpointInfo {
  std::int64_t epoch = 0;                      // epochs completed when it was written
  Generator::State rng{};                      // default_generator()'s state
  std::map<std::string, std::string> extra{};  // caller's entries (stored as "extra.<key>")
};

namespace detail {

inline std::string format_rng(const Generator::State& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char buf[17];
    const auto [end, ec] = std::to_chars(buf, buf + 16, s[i], 16);
    (void)ec;
    if (i) out += ',';  // two appends, not "," + std::string: GCC 12 -Wrestrict false positive
    out.append(buf, end);
  }
  return out;
}

inline std::uint64_t parse_u64(const std::string& text, int base, const std::string& what) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  check<IoError>(ec == std::errc() && end == text.data() + text.size() && !text.empty(), what, ": '", text,
                 "' is not a valid number");
  return v;
}

inline Generator::State parse_rng(const std::string& text, const std::string& what) {
  Generator::State s{};
  std::size_t pos = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const std::size_t comma = text.find(',', pos);
    check<IoError>((i + 1 < s.size()) == (comma != std::string::npos), what, ": '", text,
                   "' is not four comma-separated hexadecimal words");
    s[i] = parse_u64(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos), 16, what);
    pos = comma + 1;
  }
  return s;
}

inline std::int64_t parse_count(const SafeTensors& file, const std::string& key) {
  const std::string what = "checkpoint '" + file.source() + "': metadata '" + key + "'";
  const std::uint64_t v = parse_u64(file.meta(key), 10, what);
  check<IoError>(v <= static_cast<std::uint64_t>(INT64_MAX), what, " is out of range");
  return static_cast<std::int64_t>(v);
}

}  // namespace detail

// Reads only the metadata of a checkpoint (epoch, RNG state, extra entries).
inline CheckpointInfo checkpoint_info(const SafeTensors& file) {
  const auto format = file.metadata().find("rescnn.format");
  check<IoError>(format != file.metadata().end(), "checkpoint '", file.source(),
                 "' is not a rescnn training checkpoint (no 'rescnn.format' metadata; a plain state dict "
                 "loads with io::load(model, path))");
  check<IoError>(format->second == kCheckpointFormat, "checkpoint '", file.source(), "' has format '", format->second,
                 "', this build reads '", kCheckpointFormat, "'");
  CheckpointInfo info;
  info.epoch = detail::parse_count(file, "epoch");
  info.rng = detail::parse_rng(file.meta("rng"), "checkpoint '" + file.source() + "': metadata 'rng'");
  for (const auto& [key, value] : file.metadata())
    if (key.rfind("extra.", 0) == 0) info.extra.emplace(key.substr(6), value);
  return info;
}

// Tensors a caller keeps beside the model and optimizer (the trainer's
// weight average), stored as "training.<name>" so that they neither collide
// with the model's names nor stop the file loading as a plain state dict.
template <class T, class D>
using ExtraState = std::vector<std::pair<std::string, Tensor<T, D>*>>;

template <class T, class D>
void save_checkpoint(const std::filesystem::path& file, nn::Module<T, D>& model, optim::Optimizer<T, D>& optimizer,
                     const CheckpointInfo& info, const ExtraState<T, D>& extra_state = {}) {
  check<ValueError>(info.epoch >= 0, "save_checkpoint: epoch must be >= 0, got ", info.epoch);
  SafeTensors st = state_dict(model);
  for (auto& [name, tensor] : optimizer.named_state()) st.add(std::string(kOptimizerPrefix) + name, *tensor);
  for (auto& [name, tensor] : extra_state) {
    const std::string key = std::string(kTrainingStatePrefix) + name;
    check<ValueError>(!st.contains(key), "save_checkpoint: extra state '", name, "' is given twice");
    st.add(key, *tensor);
  }
  st.set_metadata("format", "pt");
  st.set_metadata("rescnn.format", std::string(kCheckpointFormat));
  st.set_metadata("epoch", std::to_string(info.epoch));
  st.set_metadata("rng", detail::format_rng(info.rng));
  st.set_metadata("optimizer.type", optimizer.type_name());
  st.set_metadata("optimizer.steps", std::to_string(optimizer.steps()));
  st.set_metadata("optimizer.config", optimizer.to_string());
  for (const auto& [key, value] : info.extra) st.set_metadata("extra." + key, value);
  st.save(file);
}

namespace detail {

// Throws unless `file` holds `key` with T's dtype and `tensor`'s shape.
template <class T, class D>
void check_state_tensor(const SafeTensors& file, const std::string& key, const Tensor<T, D>& tensor,
                        const std::string& missing_hint) {
  const std::string where = "checkpoint '" + file.source() + "': ";
  check<IoError>(file.contains(key), where, "missing state '", key, "'", missing_hint);
  const TensorRecord& rec = file.record(key);
  check<IoError>(rec.dtype == dtype_of<T>(), where, "state '", key, "' has dtype ", to_string(rec.dtype), ", expected ",
                 to_string(dtype_of<T>()));
  check<ShapeError>(same_extents(rec, tensor.shape()), where, "state '", key, "' has shape ", format_dims(rec.shape),
                    ", expected ", format_dims(extents(tensor.shape())));
}

template <class T, class D>
void copy_state_tensor(const SafeTensors& file, const std::string& key, Tensor<T, D>& tensor) {
  const TensorRecord& rec = file.record(key);
  if (!rec.bytes.empty()) DeviceTraits<D>::copy_from_host(tensor.data(), rec.bytes.data(), rec.bytes.size());
}

}  // namespace detail

// Restores model, optimizer (state tensors and step count) and returns the
// metadata; the caller restores the generator from `rng` if it wants to.
// The optimizer's hyperparameters are the caller's (as when PyTorch users
// rebuild an optimizer before load_state_dict); its type must match.
template <class T, class D>
CheckpointInfo load_checkpoint(const SafeTensors& file, nn::Module<T, D>& model, optim::Optimizer<T, D>& optimizer,
                               const ExtraState<T, D>& extra_state = {}) {
  const std::string where = "checkpoint '" + file.source() + "': ";
  CheckpointInfo info = checkpoint_info(file);
  const std::string saved_type = file.meta("optimizer.type");
  check<IoError>(saved_type == optimizer.type_name(), where, "it holds ", saved_type, " state, but the optimizer is ",
                 optimizer.type_name());
  const std::int64_t steps = detail::parse_count(file, "optimizer.steps");

  // Validate the optimizer's entries and the extra state before anything is changed.
  auto state = optimizer.named_state();
  const std::string configs =
      " (saved with " + file.meta("optimizer.config") + ", resumed with " + optimizer.to_string() + ")";
  for (auto& [name, tensor] : state)
    detail::check_state_tensor(file, std::string(kOptimizerPrefix) + name, *tensor, configs);
  std::size_t present = 0;
  for (const std::string& name : file.names()) present += name.rfind(kOptimizerPrefix, 0) == 0;
  check<IoError>(present == state.size(), where, "it holds ", present, " optimizer state tensors, the optimizer has ",
                 state.size(), configs);
  for (auto& [name, tensor] : extra_state)
    detail::check_state_tensor(file, std::string(kTrainingStatePrefix) + name, *tensor, "");
  std::size_t extra_present = 0;
  for (const std::string& name : file.names()) extra_present += name.rfind(kTrainingStatePrefix, 0) == 0;
  check<IoError>(extra_present == extra_state.size(), where, "it holds ", extra_present,
                 " extra training state tensors (a weight average), this run keeps ", extra_state.size());

  load_state_dict(model, file);  // validates, then copies
  for (auto& [name, tensor] : state) detail::copy_state_tensor(file, std::string(kOptimizerPrefix) + name, *tensor);
  for (auto& [name, tensor] : extra_state)
    detail::copy_state_tensor(file, std::string(kTrainingStatePrefix) + name, *tensor);
  optimizer.set_steps(steps);
  return info;
}

template <class T, class D>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, nn::Module<T, D>& model,
                               optim::Optimizer<T, D>& optimizer, const ExtraState<T, D>& extra_state = {}) {
  return load_checkpoint(SafeTensors::load(path), model, optimizer, extra_state);
}

}  // namespace rescnn::io
