// tests/support/golden.hpp — access to the PyTorch fixtures.
//
// tests/golden/make_golden.py writes one safetensors file per case, named
// "<layer>__<case>.safetensors", holding the tensors and, as metadata, the
// layer's options. These helpers list a layer's cases and read options.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "rescnn/backend/geometry.hpp"
#include "rescnn/io/safetensors.hpp"

namespace rescnn::testing {

inline std::filesystem::path golden_dir() { return RESCNN_GOLDEN_DIR; }

// All fixture files of a layer, sorted; fails the test when there are none
// (a missing fixture must not make a golden test pass vacuously).
inline std::vector<std::filesystem::path> golden_cases(const std::string& layer) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(golden_dir())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(layer + "__", 0) == 0 && entry.path().extension() == ".safetensors") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  INFO("fixture directory " << golden_dir() << ", layer " << layer);
  REQUIRE_FALSE(out.empty());
  return out;
}

inline index_t meta_int(const io::SafeTensors& f, const std::string& key) { return std::stoll(f.meta(key)); }
inline double meta_double(const io::SafeTensors& f, const std::string& key) { return std::stod(f.meta(key)); }
inline bool meta_bool(const io::SafeTensors& f, const std::string& key) { return f.meta(key) == "true"; }

// "h,w" -> Size2
inline Size2 meta_pair(const io::SafeTensors& f, const std::string& key) {
  const std::string v = f.meta(key);
  const auto comma = v.find(',');
  if (comma == std::string::npos) return Size2(std::stoll(v));
  return Size2(std::stoll(v.substr(0, comma)), std::stoll(v.substr(comma + 1)));
}

}  // namespace rescnn::testing
