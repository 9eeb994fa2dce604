// rescnn/models/summary.hpp — what a model computes, shape by shape, without
// running it: every shape comes from Module::output_shape, so summarising
// resnet152 on a 4096x4096 input allocates no activations.
//
//   layer_summary(model, {1, 1, 96, 96});  // d2l's per-stage printout
//   summary(model, {1, 3, 224, 224});      // a torchinfo-style table
#pragma once

#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "rescnn/nn/module.hpp"
#include "rescnn/nn/sequential.hpp"

namespace rescnn::models {

// d2l's layer_summary: the output shape of each top-level child.
template <class T, class D>
void layer_summary(const nn::Module<T, D>& model, const Shape& input, std::ostream& os) {
  Shape s = input;
  for (const auto& [name, child] : model.named_children()) {
    s = child->output_shape(s);
    os << std::left << std::setw(12) << child->type_name() << " output shape:\t" << s << "\n";
  }
}

struct SummaryRow {
  std::string name, type;
  Shape output;
  index_t parameters = 0;
  int depth = 0;
};

struct Summary {
  std::vector<SummaryRow> rows;
  Shape input, output;
  index_t total_parameters = 0, total_buffer_elements = 0;
};

namespace detail {
template <class T, class D>
void walk(nn::Module<T, D>& m, const std::string& name, const Shape& input, int depth, int max_depth, Summary& out) {
  const Shape output = m.output_shape(input);
  out.rows.push_back({name, m.type_name(), output, m.num_parameters(), depth});
  // Only a Sequential's children run one after another, so only there can
  // shapes be chained; a block's internals are summarised by the block row.
  auto* seq = dynamic_cast<nn::Sequential<T, D>*>(&m);
  if (!seq || depth >= max_depth) return;
  Shape s = input;
  for (const auto& [child_name, child] : seq->named_children()) {
    walk(*child, name.empty() ? child_name : name + "." + child_name, s, depth + 1, max_depth, out);
    s = child->output_shape(s);
  }
}
}  // namespace detail

// Rows for the model's children down to `max_depth` (1: stages, 2: blocks).
template <class T, class D>
Summary summarise(nn::Module<T, D>& model, const Shape& input, int max_depth = 2) {
  Summary s;
  s.input = input;
  Shape shape = input;
  for (const auto& [name, child] : model.named_children()) {
    detail::walk(*child, name, shape, 1, max_depth, s);
    shape = child->output_shape(shape);
  }
  s.output = model.output_shape(input);
  s.total_parameters = model.num_parameters();
  s.total_buffer_elements = model.num_buffer_elements();
  return s;
}

inline std::string with_commas(index_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

inline void print(const Summary& s, std::ostream& os) {
  const std::string rule(90, '=');
  os << rule << "\n"
     << std::left << std::setw(36) << "Layer (name)" << std::setw(20) << "Type" << std::setw(22) << "Output shape"
     << std::right << std::setw(12) << "Param #"
     << "\n"
     << rule << "\n";
  for (const auto& r : s.rows) {
    const std::string indent(static_cast<std::size_t>(2 * (r.depth - 1)), ' ');
    os << std::left << std::setw(36) << (indent + r.name) << std::setw(20) << r.type << std::setw(22)
       << r.output.to_string() << std::right << std::setw(12) << with_commas(r.parameters) << "\n";
  }
  os << rule << "\n"
     << "Input shape: " << s.input << "\nOutput shape: " << s.output << "\n"
     << "Total params: " << with_commas(s.total_parameters) << "\n"
     << "Buffer elements (BatchNorm running stats): " << with_commas(s.total_buffer_elements) << "\n"
     << rule << "\n";
}

template <class T, class D>
void summary(nn::Module<T, D>& model, const Shape& input, std::ostream& os, int max_depth = 2) {
  print(summarise(model, input, max_depth), os);
}

}  // namespace rescnn::models
