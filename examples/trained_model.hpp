// examples/trained_model.hpp — a trained model back from its weights file,
// for the programs that use one (predict, export_onnx).
//
// The file is a checkpoint of train_fashion_mnist or train_images, or any
// state dict with the model's names (torchvision's, for the torchvision
// models). The number of classes and of input channels are read off the
// weights themselves (the classifier's rows, the first convolution's input
// channels), so `--model resnet18 --weights my.safetensors` is all it takes;
// weights of another model are an error listing what does not match.
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <rescnn/rescnn.hpp>

namespace trained_model {

namespace rn = rescnn;

struct TrainedModel {
  std::shared_ptr<rn::nn::Module<float>> model;
  std::string name;
  std::int64_t num_classes = 0, in_channels = 0;
  std::map<std::string, std::string> settings;  // the trainer's run settings, for a checkpoint ("size", "resize", ...)

  // A run setting of the trainer that wrote the checkpoint, or "".
  std::string setting(const std::string& key) const {
    const auto it = settings.find(key);
    return it == settings.end() ? std::string() : it->second;
  }

  // The image size it was trained at: the checkpoint's --resize
  // (train_fashion_mnist) or --size (train_images), else 28 for a grey
  // model and 224 (ImageNet's) for an RGB one.
  std::int64_t trained_size() const {
    const std::string key = in_channels == 1 ? "resize" : "size";
    const std::string recorded = setting(key);
    if (recorded.empty() || recorded == "0") return in_channels == 1 ? 28 : 224;
    std::int64_t size = 0;
    const auto [end, ec] = std::from_chars(recorded.data(), recorded.data() + recorded.size(), size);
    rn::check<rn::ValueError>(ec == std::errc() && end == recorded.data() + recorded.size() && size > 0,
                              "the checkpoint's setting '", key, "' is '", recorded,
                              "', not an image size; give --size");
    return size;
  }
};

// `name` empty: the model the checkpoint records (extra.model).
inline TrainedModel load(std::string name, const std::filesystem::path& weights) {
  const auto file = rn::io::SafeTensors::load(weights);
  TrainedModel out;
  const std::string extra = "extra.";
  for (const auto& [key, value] : file.metadata())
    if (key.rfind(extra, 0) == 0) out.settings[key.substr(extra.size())] = value;
  if (name.empty()) {
    name = out.setting("model");
    rn::check<rn::ValueError>(!name.empty(), "--weights '", weights.string(),
                              "' records no model (it is not a rescnn checkpoint); name it with --model");
  }
  // The shapes that tell the classes and channels, at the model's own names.
  // (One class: the probe is built only for its names, so keep it small.)
  const auto probe = rn::models::create<float>(name, {.num_classes = 1});
  const std::string first = probe->named_parameters().front().first;
  const std::string head = rn::models::head_prefix(*probe) + "weight";
  for (const std::string& key : {first, head})
    rn::check<rn::ValueError>(
        file.contains(key), "--weights '", weights.string(), "' has no tensor '", key, "': these are not weights of ",
        name, out.setting("model").empty() ? std::string() : " (the checkpoint is of " + out.setting("model") + ")");
  const auto& conv = file.record(first).shape;
  const auto& fc = file.record(head).shape;
  rn::check<rn::ValueError>(conv.size() == 4 && fc.size() == 2, "--weights '", weights.string(), "': '", first,
                            "' and '", head, "' do not have the shapes of ", name,
                            "'s first convolution and classifier");
  out.name = name;
  out.in_channels = conv[1];
  out.num_classes = fc[0];
  out.model = rn::models::create<float>(name, {.num_classes = out.num_classes, .in_channels = out.in_channels});
  rn::io::load_state_dict(*out.model, file);  // names and shapes all checked; a mismatch lists them
  out.model->eval();
  return out;
}

}  // namespace trained_model
