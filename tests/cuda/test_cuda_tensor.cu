// Tensor<T, Cuda>: bit-exact round trips between host and device, factories,
// views and copies on the device, seeded random tensors equal on both
// devices, the messages of failed CUDA calls and of running out of memory,
// and the caching allocator's reuse of freed blocks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "rescnn/backend/cuda/allocator.hpp"
#include "rescnn/backend/cuda/check.hpp"
#include "rescnn/backend/cuda/context.hpp"
#include "rescnn/core/tensor.hpp"

using namespace rescnn;
using Catch::Matchers::Contains;

// Catch's two-argument macros split at the comma of Tensor<T, Cuda>.
using FloatCuda = Tensor<float, Cuda>;
using DoubleCuda = Tensor<double, Cuda>;

namespace {

// Byte-for-byte equality: NaN payloads, -0.0 and denormals included.
template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Values that a conversion or a wrong element size would change: signed
// zeros, infinities, NaN, the extremes, denormals, and a ramp long enough to
// span several of the kernels' 256-thread blocks.
template <class T>
std::vector<T> tricky_values() {
  using L = std::numeric_limits<T>;
  std::vector<T> v;
  if constexpr (std::is_floating_point_v<T>)
    v = {T(0),        -T(0),    L::infinity(),   -L::infinity(), L::quiet_NaN(), L::max(),
         L::lowest(), L::min(), L::denorm_min(), L::epsilon(),   T(1) / T(3)};
  else
    v = {T(0), T(-1), L::max(), L::min(), static_cast<T>(L::max() / 3), T(12345)};
  for (int i = 0; i < 1000; ++i) v.push_back(static_cast<T>(i * 7 - 3000));
  return v;
}

template <class T>
void check_round_trip() {
  const auto values = tricky_values<T>();
  const auto host = Tensor<T>::from_vector({static_cast<index_t>(values.size())}, values);
  const Tensor<T, Cuda> device = host.template to<Cuda>();
  CHECK(device.shape() == host.shape());
  CHECK(same_bytes(device.to_vector(), values));                     // device -> host vector
  CHECK(same_bytes(device.template to<Cpu>().to_vector(), values));  // device -> host tensor
  CHECK(same_bytes(device.cpu().to_vector(), values));
  // Created on the device directly (copy on the compute stream, not the
  // staged upload).
  const auto direct = Tensor<T, Cuda>::from_vector(host.shape(), values);
  CHECK(same_bytes(direct.to_vector(), values));
  // A device-to-device copy keeps the bytes too.
  CHECK(same_bytes(device.clone().to_vector(), values));
}

}  // namespace

TEST_CASE("CPU -> GPU -> CPU round trips are bit-exact (float, double, int64)", "[cuda][tensor]") {
  SECTION("float") { check_round_trip<float>(); }
  SECTION("double") { check_round_trip<double>(); }
  SECTION("int64") { check_round_trip<std::int64_t>(); }
  SECTION("int32 and uint8") {
    check_round_trip<std::int32_t>();
    const std::vector<std::uint8_t> bytes{0, 1, 127, 128, 255, 3, 5};
    CHECK(Tensor<std::uint8_t, Cuda>::from_vector({7}, bytes).to_vector() == bytes);
  }
  SECTION("4-d shapes and empty tensors") {
    const auto host = Tensor<float>::normal({2, 3, 5, 7}, 0, 1);
    const auto back = host.to<Cuda>().cpu();
    CHECK(back.shape() == Shape{2, 3, 5, 7});
    CHECK(same_bytes(back.to_vector(), host.to_vector()));
    const auto empty = Tensor<float>::zeros({0, 3}).to<Cuda>();
    CHECK(empty.numel() == 0);
    CHECK(empty.to_vector().empty());
    CHECK(empty.cpu().shape() == Shape{0, 3});
  }
}

TEST_CASE("The host buffer may be reused as soon as an upload returns", "[cuda][tensor]") {
  // Uploads are staged through a ring of pinned buffers and travel on the
  // copy stream; the source must have been copied out before to() returns,
  // and more uploads than the ring has slots must each keep their own data.
  auto host = Tensor<float>::zeros({4096});
  std::vector<Tensor<float, Cuda>> uploaded;
  for (int i = 0; i < 10; ++i) {
    host.fill_(static_cast<float>(i));
    uploaded.push_back(host.to<Cuda>());
  }
  host.fill_(-1.0f);
  for (int i = 0; i < 10; ++i) {
    INFO("upload " << i);
    CHECK(uploaded[static_cast<std::size_t>(i)].to_vector() == std::vector<float>(4096, static_cast<float>(i)));
  }
  // A tensor already on the device: to<Cuda>() is a view, not a copy.
  CHECK(uploaded[0].to<Cuda>().shares_storage_with(uploaded[0]));
}

TEST_CASE("Factories, views, copies and item() on the device", "[cuda][tensor]") {
  SECTION("zeros, ones, full") {
    CHECK(Tensor<float, Cuda>::zeros({3, 4}).to_vector() == std::vector<float>(12, 0.0f));
    CHECK(Tensor<double, Cuda>::ones({5}).to_vector() == std::vector<double>(5, 1.0));
    CHECK(Tensor<float, Cuda>::full({2, 2, 2}, 2.5f).to_vector() == std::vector<float>(8, 2.5f));
    CHECK(Tensor<std::int64_t, Cuda>::full({3}, -7).to_vector() == std::vector<std::int64_t>(3, -7));
  }
  SECTION("clone is a deep copy") {
    auto a = Tensor<float, Cuda>::from_vector({4}, {1, 2, 3, 4});
    auto b = a.clone();
    CHECK_FALSE(b.shares_storage_with(a));
    a.fill_(9.0f);
    CHECK(b.to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(a.to_vector() == std::vector<float>(4, 9.0f));
  }
  SECTION("copy_, zero_ and fill_") {
    auto dst = Tensor<double, Cuda>::zeros({2, 3});
    dst.copy_(Tensor<double, Cuda>::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
    CHECK(dst.to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6});
    const auto wrong_shape = DoubleCuda::zeros({3, 2});
    CHECK_THROWS_AS(dst.copy_(wrong_shape), ShapeError);
    dst.zero_();
    CHECK(dst.to_vector() == std::vector<double>(6, 0.0));
    dst.fill_(-0.5);
    CHECK(dst.to_vector() == std::vector<double>(6, -0.5));
  }
  SECTION("slice, reshape and view share the storage") {
    const std::vector<float> v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    auto t = Tensor<float, Cuda>::from_vector({4, 3}, v);
    auto rows = t.slice(1, 3);
    CHECK(rows.shape() == Shape{2, 3});
    CHECK(rows.to_vector() == std::vector<float>{3, 4, 5, 6, 7, 8});
    CHECK(rows.shares_storage_with(t));
    // Writing through a slice (copy_ into an offset view) changes the parent.
    rows.copy_(Tensor<float, Cuda>::full({2, 3}, -1.0f));
    CHECK(t.to_vector() == std::vector<float>{0, 1, 2, -1, -1, -1, -1, -1, -1, 9, 10, 11});
    auto last = t.slice(3, 4);
    last.zero_();
    CHECK(t.to_vector() == std::vector<float>{0, 1, 2, -1, -1, -1, -1, -1, -1, 0, 0, 0});
    // A slice copied back to the host holds only its rows.
    CHECK(t.slice(0, 1).cpu().to_vector() == std::vector<float>{0, 1, 2});
    // A slice of a slice, and a clone of a slice (offset source).
    CHECK(t.slice(1, 4).slice(1, 2).clone().to_vector() == std::vector<float>(3, -1.0f));
    auto r = t.reshape({2, -1});
    CHECK(r.shape() == Shape{2, 6});
    CHECK(r.shares_storage_with(t));
    CHECK(r.to_vector() == t.to_vector());
  }
  SECTION("item") {
    CHECK(Tensor<float, Cuda>::full({1}, 3.25f).item() == 3.25f);
    CHECK(Tensor<std::int64_t, Cuda>::full({1, 1}, std::int64_t{1} << 50).item() == std::int64_t{1} << 50);
    auto t = Tensor<double, Cuda>::from_vector({3}, {1.5, 2.5, 3.5});
    CHECK(t.slice(2, 3).item() == 3.5);  // at an offset
    CHECK_THROWS_AS(t.item(), ShapeError);
  }
}

TEST_CASE("Seeded random tensors are the same on both devices", "[cuda][tensor]") {
  Generator a(42), b(42);
  const auto cpu_u = Tensor<float>::uniform({3, 1000}, -2, 5, a);
  const auto gpu_u = Tensor<float, Cuda>::uniform({3, 1000}, -2, 5, b);
  CHECK(same_bytes(gpu_u.to_vector(), cpu_u.to_vector()));
  const auto cpu_n = Tensor<double>::normal({777}, 1, 3, a);
  const auto gpu_n = Tensor<double, Cuda>::normal({777}, 1, 3, b);
  CHECK(same_bytes(gpu_n.to_vector(), cpu_n.to_vector()));
  // The generators advanced alike.
  CHECK(a.state() == b.state());
}

TEST_CASE("A failed CUDA call throws CudaError naming the error, the call and the place", "[cuda][errors]") {
  try {
    RESCNN_CUDA_CHECK(cudaSetDevice(100000));
    FAIL("cudaSetDevice(100000) did not throw");
  } catch (const CudaError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Contains("cudaErrorInvalidDevice"));
    CHECK_THAT(what, Contains("cudaSetDevice(100000)"));
    CHECK_THAT(what, Contains("test_cuda_tensor.cu"));
  }
  // The error was cleared: the backend still works.
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(Tensor<float, Cuda>::full({2}, 1.0f).to_vector() == std::vector<float>{1, 1});
}

TEST_CASE("Running out of device memory throws CudaOutOfMemory saying how much was asked and is free",
          "[cuda][errors]") {
  // 2^40 floats: 4 TiB, more than any GPU has.
  try {
    auto t = Tensor<float, Cuda>::empty({std::int64_t{1} << 40});
    FAIL("allocating 4 TiB did not throw");
  } catch (const CudaOutOfMemory& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Contains("tried to allocate"));
    CHECK_THAT(what, Contains("free"));
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  // CudaOutOfMemory is a CudaError, so code that catches CUDA failures sees it.
  CHECK_THROWS_AS(FloatCuda::empty(Shape{std::int64_t{1} << 40}), CudaError);
  // And the device is usable afterwards.
  CHECK(Tensor<double, Cuda>::ones({3}).to_vector() == std::vector<double>(3, 1.0));
}

TEST_CASE("Freed device memory is reused: repeated shapes do not call cudaMalloc again", "[cuda][allocator]") {
  // Small (rounded to 512 B, exact reuse) and large (rounded to 1 MiB) sizes,
  // for compute tensors and for uploads (a separate pool).
  const std::vector<Shape> shapes{{1}, {1000}, {3, 5, 7}, {300, 1024}, {8, 64, 32, 32}, {5, 1 << 20}};
  const auto round = [&] {
    std::vector<Tensor<float, Cuda>> live;
    for (const auto& s : shapes) live.push_back(Tensor<float, Cuda>::empty(s));
    for (const auto& s : shapes) live.push_back(Tensor<float, Cuda>::zeros(s));
    live.push_back(Tensor<float>::ones({256, 256}).to<Cuda>());
    const auto upload_double = Tensor<double>::ones({3000}).to<Cuda>();
    cuda::synchronize();
  };
  round();
  const auto after_first = cuda::memory_stats();
  for (int i = 0; i < 5; ++i) {
    round();
    const auto now = cuda::memory_stats();
    INFO("round " << i + 2);
    CHECK(now.device_allocations == after_first.device_allocations);
    CHECK(now.reserved_bytes == after_first.reserved_bytes);
    CHECK(now.cache_hits > after_first.cache_hits);
  }
  // Every block went back to the cache when its tensor was destroyed.
  CHECK(cuda::memory_stats().allocated_bytes == after_first.allocated_bytes);
}
