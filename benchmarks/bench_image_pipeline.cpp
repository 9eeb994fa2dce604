// bench_image_pipeline — how many images per second the input pipeline
// delivers: ImageFolderLoader with W worker threads reading, decoding,
// RandomResizedCrop + flip + to_tensor + ImageNet normalisation (the
// train_images --size S training transform), batched. The same work as
// benchmarks/torch_image_pipeline_bench.py does with torchvision's
// ImageFolder + DataLoader(num_workers=W), with the same output line:
//
//   bench_image_pipeline --data DIR --size 128 --workers 1 [--batch 32] [--epochs 3]
//   case=pipeline_train size=128x128 workers=1 batch=32 images=2000 imgs_per_s=... library=rescnn
//
// --decode adds one line per file kind for decoding alone, from memory, on
// one thread (case=decode_jpeg / decode_png), and the same for stb_image
// where the benchmark was built with it (Debian's libstb-dev):
//
//   case=decode_jpeg files=1000 megapixels_per_s=... imgs_per_s=... library=libjpeg
//   case=decode_jpeg files=1000 megapixels_per_s=... imgs_per_s=... library=stb_image
//
// The first epoch is a warm-up (it brings the files into the page cache, as
// the torchvision script's does); the rest are timed. The model is not run:
// this is the rate a trainer can consume at most, to be compared with the
// rate resnet18 trains at (bench_resnet --model resnet18 --channels 3).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <rescnn/data/image_loader.hpp>

#if RESCNN_BENCH_WITH_STB
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb/stb_image.h>
#endif

namespace rn = rescnn;

namespace {

struct Args {
  std::string data;
  int size = 128, workers = 1;
  long batch = 32, epochs = 3;
  bool decode = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void bench_pipeline(const Args& a, const std::shared_ptr<const rn::data::ImageFolder>& folder) {
  rn::data::ImageFolderLoader loader(folder, {}, rn::data::train_transform(a.size),
                                     {.batch_size = a.batch, .shuffle = true, .seed = 0, .workers = a.workers});
  double checksum = 0;  // keeps the batches observable
  auto epoch = [&](std::int64_t e) {
    loader.start_epoch(e);
    while (auto batch = loader.next()) checksum += static_cast<double>(batch->images[0]);
  };
  epoch(0);
  const auto t0 = std::chrono::steady_clock::now();
  for (long e = 1; e < a.epochs; ++e) epoch(e);
  const double images = static_cast<double>(folder->size() * (a.epochs - 1));
  std::printf("case=pipeline_train size=%dx%d workers=%d batch=%ld images=%lld imgs_per_s=%.1f library=rescnn\n",
              a.size, a.size, a.workers, a.batch, static_cast<long long>(folder->size()), images / seconds_since(t0));
  std::fprintf(stderr, "checksum=%g\n", checksum);
}

// Every file's bytes, by kind ("jpeg", "png").
std::map<std::string, std::vector<std::vector<std::uint8_t>>> files_by_kind(const rn::data::ImageFolder& folder) {
  std::map<std::string, std::vector<std::vector<std::uint8_t>>> out;
  for (const auto& sample : folder.samples()) {
    auto bytes = rn::data::read_file_bytes(sample.path);
    const std::span<const std::uint8_t> view(bytes);
    if (rn::data::is_jpeg(view)) out["jpeg"].push_back(std::move(bytes));
    if (rn::data::is_png(view)) out["png"].push_back(std::move(bytes));
  }
  return out;
}

template <class Decode>
void time_decoding(const std::string& kind, const std::string& library,
                   const std::vector<std::vector<std::uint8_t>>& files, Decode decode) {
  double pixels = 0;
  for (const auto& f : files) pixels += decode(f);  // warm-up, and the pixel count
  const int rounds = 3;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r)
    for (const auto& f : files) decode(f);
  const double s = seconds_since(t0);
  std::printf("case=decode_%s files=%zu megapixels_per_s=%.1f imgs_per_s=%.1f library=%s\n", kind.c_str(), files.size(),
              rounds * pixels / s / 1e6, rounds * static_cast<double>(files.size()) / s, library.c_str());
}

void bench_decoding(const rn::data::ImageFolder& folder) {
  for (const auto& [kind, files] : files_by_kind(folder)) {
    time_decoding(kind, kind == "jpeg" ? "libjpeg" : "libpng", files, [](const std::vector<std::uint8_t>& f) {
      const auto image = rn::data::decode_image(f, "bench", {.channels = 3});
      return static_cast<double>(image.width) * image.height;
    });
#if RESCNN_BENCH_WITH_STB
    time_decoding(kind, "stb_image", files, [](const std::vector<std::uint8_t>& f) {
      int w = 0, h = 0, c = 0;
      unsigned char* p = stbi_load_from_memory(f.data(), static_cast<int>(f.size()), &w, &h, &c, 3);
      if (!p) throw rn::IoError(std::string("stb_image: ") + stbi_failure_reason());
      stbi_image_free(p);
      return static_cast<double>(w) * h;
    });
#endif
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_image_pipeline: images/s of ImageFolderLoader, as torch_image_pipeline_bench.py measures it"};
  app.add_option("--data", a.data, "An image folder (DIR/<class>/*.png|jpg)")->required();
  app.add_option("--size", a.size, "Training crop size")->check(CLI::Range(8, 1024))->capture_default_str();
  app.add_option("--workers", a.workers, "Decoding threads")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--batch", a.batch, "Batch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--epochs", a.epochs, "Epochs, the first a warm-up")
      ->check(CLI::Range(2L, 1000L))
      ->capture_default_str();
  app.add_flag("--decode", a.decode, "Also time decoding alone (and stb_image's, where built with it)");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto folder = std::make_shared<const rn::data::ImageFolder>(a.data);  // scanned once for both
    bench_pipeline(a, folder);
    if (a.decode) bench_decoding(*folder);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_image_pipeline: %s\n", e.what());
    return 1;
  }
  return 0;
}
