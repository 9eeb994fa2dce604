// model_summary — print a model's layers, output shapes and parameter counts
// without running it.
//   model_summary --model resnet50
//   model_summary --model d2l_resnet18 --input 1,1,96,96 --classes 10
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <sstream>
#include <vector>

#include <rescnn/rescnn.hpp>

namespace rn = rescnn;

namespace {
rn::Shape parse_shape(const std::string& text) {
  std::vector<rn::index_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const std::optional<std::int64_t> v = rn::train::parse_int64(part);
    if (!v || *v <= 0) throw rn::ValueError("--input: '" + text + "' is not four positive integers N,C,H,W");
    dims.push_back(*v);
  }
  if (dims.size() != 4) throw rn::ValueError("--input: '" + text + "' is not four positive integers N,C,H,W");
  return rn::Shape::from_range(dims.begin(), dims.end());
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Print a rescnn model's layers, output shapes and parameter counts."};
  std::string model_name;
  std::string input_text;
  rn::index_t classes = -1;
  int depth = 2;
  std::string valid;
  for (const auto& n : rn::models::model_names()) valid += (valid.empty() ? "" : ", ") + n;
  app.add_option("--model", model_name, "Model name: " + valid)->required();
  app.add_option("--input", input_text, "Input shape N,C,H,W (default 1,3,224,224; 1,1,96,96 for d2l_resnet18)");
  app.add_option("--classes", classes, "Number of classes (default 1000; 10 for d2l_resnet18)")
      ->check(CLI::PositiveNumber);
  app.add_option("--depth", depth, "Rows down to this depth (1: stages, 2: blocks)")->check(CLI::Range(1, 8));
  CLI11_PARSE(app, argc, argv);

  try {
    const bool d2l = model_name.rfind("d2l_", 0) == 0;
    const rn::Shape input =
        input_text.empty() ? (d2l ? rn::Shape{1, 1, 96, 96} : rn::Shape{1, 3, 224, 224}) : parse_shape(input_text);
    const rn::models::ModelOptions options{.num_classes = classes > 0 ? classes : (d2l ? 10 : 1000),
                                           .in_channels = input[1]};
    auto model = rn::models::create<float>(model_name, options);
    if (d2l) {
      std::cout << "layer_summary (d2l):\n";
      rn::models::layer_summary(*model, input, std::cout);
      std::cout << "\n";
    }
    rn::models::summary(*model, input, std::cout, depth);
    std::cout << "total_params=" << model->num_parameters() << "\n";
  } catch (const rn::Error& e) {
    std::cerr << "model_summary: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
