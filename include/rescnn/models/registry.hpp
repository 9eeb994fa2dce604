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
      {"d2l_resnet18", [](const ModelOptions& o, Generator& g) { return d2l_resnet18<T, D>(o.num_classes, o.in_channels, g); }},
      {"resnet18", [](const ModelOptions& o, Generator& g) { return resnet18<T, D>(o, g); }},
      {"resnet34", [](const ModelOptions& o, Generator& g) { return resnet34<T, D>(o, g); }},
      {"resnet50", [](const ModelOptions& o, Generator& g) { return resnet50<T, D>(o, g); }},
      {"resnet101", [](const ModelOptions& o, Generator& g) { return resnet101<T, D>(o, g); }},
      {"resnet152", [](const ModelOptions& o, Generator& g) { return resnet152<T, D>(o, g); }},
      {"resnext50_32x4d", [](const ModelOptions& o, Generator& g) { return resnext50_32x4d<T, D>(o, g); }},
      {"resnext101_32x8d", [](const ModelOptions& o, Generator& g) { return resnext101_32x8d<T, D>(o, g); }},
      {"resnext101_64x4d", [](const ModelOptions& o, Generator& g) { return resnext101_64x4d<T, D>(o, g); }},
      {"wide_resnet50_2", [](const ModelOptions& o, Generator& g) { return wide_resnet50_2<T, D>(o, g); }},
      {"wide_resnet101_2", [](const ModelOptions& o, Generator& g) { return wide_resnet101_2<T, D>(o, g); }},
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
ModelPtr<T, D> create(const std::string& name, const ModelOptions& options = {},
                      Generator& gen = default_generator()) {
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
