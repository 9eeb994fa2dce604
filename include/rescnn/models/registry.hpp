// rescnn/models/registry.hpp — build a model by name ("resnet50",
// "d2l_resnet18", ...), for command-line programs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rescnn/models/d2l_resnet.hpp"
#include "rescnn/models/resnet.hpp"

namespace rescnn::models {

template <class T, class D = Cpu>
using ModelPtr = std::shared_ptr<nn::Module<T, D>>;

template <class T, class D = Cpu>
const std::map<std::string, std::function<ModelPtr<T, D>(const ModelOptions&, Generator&)>>& registry() {
  using Make = std::function<ModelPtr<T, D>(const ModelOptions&, Generator&)>;
  static const std::map<std::string, Make> table = {
      {"d2l_resnet18",
       [](const ModelOptions& o, Generator& g) { return d2l_resnet18<T, D>(o.num_classes, o.in_channels, g); }},
#define RESCNN_REGISTRY_ENTRY(NAME, ...) {#NAME, [](const ModelOptions& o, Generator& g) { return NAME<T, D>(o, g); }},
      RESCNN_TORCHVISION_RESNETS(RESCNN_REGISTRY_ENTRY)
#undef RESCNN_REGISTRY_ENTRY
  };
  return table;
}

inline std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : registry<float>()) names.push_back(name);
  return names;
}

// Throws ValueError listing the valid names when `name` is unknown.
template <class T, class D = Cpu>
ModelPtr<T, D> create(const std::string& name, const ModelOptions& options = {}, Generator& gen = default_generator()) {
  const auto& table = registry<T, D>();
  const auto it = table.find(name);
  if (it == table.end()) {
    std::string valid;
    for (const auto& [known, make] : table) valid += (valid.empty() ? "" : ", ") + known;
    throw ValueError("unknown model '" + name + "'; valid models are: " + valid);
  }
  return it->second(options, gen);
}

}  // namespace rescnn::models
