// export_onnx — write a trained model as an ONNX file, for OpenCV's DNN
// module, ONNX Runtime and the other runtimes (io/onnx.hpp).
//
//   export_onnx --weights fashion.safetensors --output fashion.onnx              # 1x28x28 input
//   export_onnx --model resnet18 --weights photos.safetensors --output photos.onnx --size 224
//   export_onnx --model resnet50 --weights resnet50.safetensors --output r50.onnx --fold
//
// The graph takes "input" (batch, C, SIZE, SIZE), batch dynamic, with the
// preprocessing left to the caller (as predict does it), and gives "logits"
// (batch, classes). --fold folds the BatchNorms into the convolutions first
// (nn/fuse.hpp): the same outputs, fewer nodes.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <string>

#include <rescnn/rescnn.hpp>

#include "trained_model.hpp"
#include "training_cli.hpp"

namespace rn = rescnn;

int main(int argc, char** argv) {
  std::string model, weights, output;
  std::int64_t size = 0;
  bool fold = false;
  CLI::App app{"Export a trained model to ONNX (opset 13, dynamic batch)."};
  app.add_option("--model", model,
                 "Model: " + training_cli::joined(rn::models::model_names()) + " (default: the checkpoint's)")
      ->check(CLI::IsMember(rn::models::model_names()));
  app.add_option("--weights", weights, "A checkpoint of train_fashion_mnist or train_images, or a state dict")
      ->required();
  app.add_option("--output", output, "The .onnx file to write (replaced atomically)")->required();
  app.add_option("--size", size, "Input SIZExSIZE (default: the checkpoint's, else 28 grey or 224 RGB)")
      ->check(CLI::Range(std::int64_t{8}, std::int64_t{4096}));
  app.add_flag("--fold", fold, "Fold the BatchNorms into the convolutions before exporting");
  CLI11_PARSE(app, argc, argv);
  return training_cli::report_errors("export_onnx", [&] {
    // A slip of the keyboard must not replace the weights (or anything
    // else that is not an ONNX file) with the export.
    namespace fs = std::filesystem;
    std::error_code ec;
    rn::check<rn::ValueError>(!fs::equivalent(output, weights, ec), "--output '", output,
                              "' is the --weights file; the export would replace it");
    rn::check<rn::ValueError>(!fs::exists(output, ec) || fs::path(output).extension() == ".onnx", "--output '", output,
                              "' exists and is not an .onnx file; refusing to replace it");
    const auto trained = trained_model::load(model, weights);
    if (size == 0) size = trained.trained_size();
    if (fold) std::cerr << "folded " << rn::nn::fuse_conv_bn(*trained.model) << " BatchNorms\n";
    rn::io::export_onnx(*trained.model, output, {1, trained.in_channels, size, size});
    std::cout << "wrote " << output << ": " << trained.name << ", input (batch, " << trained.in_channels << ", " << size
              << ", " << size << "), logits (batch, " << trained.num_classes << ")\n";
    return 0;
  });
}
