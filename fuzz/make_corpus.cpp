// Writes the seed corpus of the fuzz harnesses (committed under
// fuzz/corpus/; rerun after a format change):
//   c++ -std=c++20 -I include -I /usr/include/eigen3 fuzz/make_corpus.cpp -o /tmp/make_corpus -lz && /tmp/make_corpus
//   fuzz/corpus
// Valid files of every kind the readers accept, each small, so that the
// fuzzers start from inputs that reach deep into the parsers.
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "rescnn/io/checkpoint.hpp"
#include "rescnn/io/state_dict.hpp"
#include "rescnn/nn/nn.hpp"
#include "rescnn/optim/sgd.hpp"

namespace fs = std::filesystem;
namespace rn = rescnn;

namespace {

void write(const fs::path& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> idx(const std::vector<unsigned>& dims, unsigned char fill) {
  std::vector<unsigned char> b{0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  std::size_t n = 1;
  for (unsigned d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    n *= d;
  }
  for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(fill + i));
  return b;
}

std::vector<unsigned char> gzip(const std::vector<unsigned char>& raw) {
  z_stream zs{};
  deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::vector<unsigned char> out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 32);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? argv[1] : "fuzz/corpus";
  fs::create_directories(root / "idx");
  fs::create_directories(root / "safetensors");
  write(root / "idx" / "images_3x2x2", idx({3, 2, 2}, 10));
  write(root / "idx" / "labels_5", idx({5}, 0));
  write(root / "idx" / "images_3x2x2.gz", gzip(idx({3, 2, 2}, 10)));
  write(root / "idx" / "tensor_2x1x2x3.gz", gzip(idx({2, 1, 2, 3}, 1)));

  // The fuzz_safetensors harness's model, so that the checkpoint loads.
  rn::manual_seed(1);
  auto model = std::make_shared<rn::nn::Sequential<float>>(
      std::make_shared<rn::nn::Conv2d<float>>(
          rn::nn::Conv2dOptions{.in_channels = 1, .out_channels = 2, .kernel_size = 3}),
      std::make_shared<rn::nn::BatchNorm2d<float>>(2), std::make_shared<rn::nn::Flatten<float>>(),
      std::make_shared<rn::nn::Linear<float>>(2, 3));
  rn::optim::SGD<float> sgd(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
  rn::io::save_checkpoint(root / "safetensors" / "checkpoint.safetensors", *model, sgd, {.epoch = 3});
  rn::io::save(*model, root / "safetensors" / "state_dict.safetensors");
  std::printf("wrote the seed corpus under %s\n", root.c_str());
  return 0;
}
