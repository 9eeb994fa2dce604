// The CPU's own single-precision GEMM (backend/cpu/kernels/gemm.inc) and
// the implicit-GEMM and Winograd convolutions built on it, at every level
// this CPU supports (generic, avx2, avx512: tests/support/isa.hpp), against
// double-precision references: every transpose combination, edge sizes
// around the register tiles (8 x 48 and 6 x 16) and the cache blocks (depth
// 256, 128 or 96 rows, 1536 columns), accumulation, leading dimensions wider
// than the matrix (nothing outside the matrix may be written), and
// convolutions whose output tiles straddle samples, strided and dilated
// ones, groups and every backward path.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "rescnn/backend/cpu/conv2d.hpp"
#include "rescnn/backend/cpu/gemm.hpp"
#include "rescnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/conv_cases.hpp"
#include "support/isa.hpp"
#include "support/threads.hpp"

using namespace rescnn;
using rescnn::testing::ConvCase;
using rescnn::testing::IsCloseToReference;

namespace {

template <class T>
std::vector<T> random_vector(std::size_t n, Generator& gen) {
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(gen.normal(0, 1));
  return v;
}

template <class T>
Tensor<double> to_double(const Tensor<T>& t) {
  const auto v = t.to_vector();
  return Tensor<double>::from_vector(t.shape(), std::vector<double>(v.begin(), v.end()));
}

}  // namespace

TEST_CASE("sgemm equals a double-precision product: transposes, edges, blocks, accumulation", "[gemm][isa]") {
  for (const cpu::Isa level : testing::float_levels()) DYNAMIC_SECTION("isa=" << cpu::isa_name(level)) {
      const testing::ScopedIsa forced(level);
      struct Size {
        index_t m, n, k;
      };
      // Around the tiles (8 x 48, 6 x 16), the blocks (depth 256, 128 or 96
      // rows, 1536 columns) and degenerate extents.
      const std::vector<Size> sizes{{1, 1, 1},     {8, 48, 16},     {7, 47, 5},     {9, 49, 257}, {17, 97, 300},
                                    {129, 50, 64}, {130, 1600, 40}, {64, 576, 600}, {3, 2000, 1}, {300, 5, 513},
                                    {6, 16, 9},    {13, 33, 31},    {97, 17, 258}};
      Generator gen(1);
      for (const auto& s : sizes) {
        for (int trans = 0; trans < 4; ++trans) {
          const bool ta = trans & 1, tb = trans & 2;
          for (bool accumulate : {false, true}) {
            INFO("M=" << s.m << " N=" << s.n << " K=" << s.k << " trans_a=" << ta << " trans_b=" << tb
                      << " accumulate=" << accumulate);
            // Leading dimensions wider than the matrices; C's spare columns
            // hold a sentinel that must survive.
            const index_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 5, ldc = s.n + 7;
            const auto a = random_vector<float>(static_cast<std::size_t>((ta ? s.k : s.m) * lda), gen);
            const auto b = random_vector<float>(static_cast<std::size_t>((tb ? s.n : s.k) * ldb), gen);
            auto c = random_vector<float>(static_cast<std::size_t>(s.m * ldc), gen);
            for (index_t i = 0; i < s.m; ++i)
              for (index_t j = s.n; j < ldc; ++j) c[static_cast<std::size_t>(i * ldc + j)] = 12345.0f;
            std::vector<double> expected(static_cast<std::size_t>(s.m * s.n));
            for (index_t i = 0; i < s.m; ++i)
              for (index_t j = 0; j < s.n; ++j) {
                double sum = accumulate ? c[static_cast<std::size_t>(i * ldc + j)] : 0.0;
                for (index_t k = 0; k < s.k; ++k)
                  sum += static_cast<double>(a[static_cast<std::size_t>(ta ? k * lda + i : i * lda + k)]) *
                         b[static_cast<std::size_t>(tb ? j * ldb + k : k * ldb + j)];
                expected[static_cast<std::size_t>(i * s.n + j)] = sum;
              }
            cpu::sgemm(s.m, s.n, s.k, a.data(), lda, ta, b.data(), ldb, tb, c.data(), ldc, accumulate);
            std::vector<float> actual(static_cast<std::size_t>(s.m * s.n));
            bool sentinel_intact = true;
            for (index_t i = 0; i < s.m; ++i) {
              for (index_t j = 0; j < s.n; ++j)
                actual[static_cast<std::size_t>(i * s.n + j)] = c[static_cast<std::size_t>(i * ldc + j)];
              for (index_t j = s.n; j < ldc; ++j)
                sentinel_intact &= c[static_cast<std::size_t>(i * ldc + j)] == 12345.0f;
            }
            CHECK(sentinel_intact);
            REQUIRE(actual.size() == expected.size());
            const auto cl = testing::closeness(actual, expected);
            INFO("worst relative error " << cl.max_rel_error << " at " << cl.worst);
            CHECK(cl.shape_ok);
            CHECK(cl.max_rel_error <= 1e-5);
          }
        }
      }
    }
}

TEST_CASE("sgemm with K = 0 writes zeros or leaves C alone", "[gemm][isa]") {
  for (const cpu::Isa level : testing::float_levels()) DYNAMIC_SECTION("isa=" << cpu::isa_name(level)) {
      const testing::ScopedIsa forced(level);
      std::vector<float> c(6, 3.0f);
      cpu::sgemm(2, 3, 0, nullptr, 1, false, nullptr, 3, false, c.data(), 3, true);
      CHECK(c == std::vector<float>(6, 3.0f));
      cpu::sgemm(2, 3, 0, nullptr, 1, false, nullptr, 3, false, c.data(), 3, false);
      CHECK(c == std::vector<float>(6, 0.0f));
    }
}

TEST_CASE("Implicit-GEMM convolutions in float equal the double-precision path", "[gemm][conv2d][isa]") {
  const std::vector<ConvCase> cases = testing::kernel_conv_cases();
  for (const cpu::Isa level : testing::float_levels())
    for (const auto& c : cases) {
      DYNAMIC_SECTION("isa=" << cpu::isa_name(level) << ": " << c.name) {
        const testing::ScopedIsa forced(level);
        const auto g = ops::conv2d_geometry(c.input, c.weight, c.params);
        // The Winograd cases must take that path (and the others must not), or they test nothing new.
        const bool winograd_case = std::string(c.name).rfind("Winograd", 0) == 0;
        CHECK(cpu::uses_winograd<float>(g) == (winograd_case && level != cpu::Isa::generic));
        Generator gen(7);
        const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
        const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
        const auto b = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
        const auto dy = Tensor<float>::normal(g.output_shape(), 0, 1, gen);
        const auto xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);

        CHECK_THAT(ops::conv2d_forward(x, w, &b, c.params),
                   IsCloseToReference<float>(ops::conv2d_forward(xd, wd, &bd, c.params), 1e-5));

        // Gradients accumulate into non-zero starting values.
        auto dw = Tensor<float>::normal(c.weight, 0, 1, gen);
        auto db = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
        auto dwd = to_double(dw), dbd = to_double(db);
        const auto dx = ops::conv2d_backward(x, w, dy, c.params, dw, &db);
        const auto dxd = ops::conv2d_backward(xd, wd, dyd, c.params, dwd, &dbd);
        CHECK_THAT(dx, IsCloseToReference<float>(dxd, 1e-5));
        CHECK_THAT(dw, IsCloseToReference<float>(dwd, 1e-5));
        CHECK_THAT(db, IsCloseToReference<float>(dbd, 1e-5));
      }
    }
}

TEST_CASE("Convolutions give the same bits on 1 and 2 threads", "[gemm][conv2d][threads][isa]") {
  // rescnn's own kernels split work across threads by output tiles, chunks
  // of Winograd tiles and columns, never inside one sum, so the thread count
  // must not change a single bit.
  const std::vector<ConvCase> cases{
      {"implicit GEMM 3x3 pad 1 on 7x7", {9, 12, 7, 7}, {24, 12, 3, 3}, {1, 1, 1, 1}},
      {"implicit GEMM 3x3 stride 2", {4, 8, 13, 11}, {12, 8, 3, 3}, {2, 1, 1, 1}},
      {"1x1 stride 2", {4, 16, 9, 9}, {32, 16, 1, 1}, {2, 0, 1, 1}},
      {"Winograd, gathered tiles (4x4 plane)", {13, 16, 4, 4}, {16, 16, 3, 3}, {1, 1, 1, 1}},
      {"Winograd, row-wise tiles, many chunks", {40, 16, 20, 20}, {16, 16, 3, 3}, {1, 1, 1, 1}},
  };
  for (const cpu::Isa level : testing::float_levels())
    for (const auto& c : cases) {
      DYNAMIC_SECTION("isa=" << cpu::isa_name(level) << ": " << c.name) {
        const testing::ScopedIsa forced(level);
        const auto g = ops::conv2d_geometry(c.input, c.weight, c.params);
        const auto run = [&](int threads) {
          const testing::ScopedNumThreads scoped(threads);
          Generator gen(3);
          const auto x = Tensor<float>::normal(c.input, 0, 1, gen);
          const auto w = Tensor<float>::normal(c.weight, 0, 1, gen);
          const auto b = Tensor<float>::normal({c.weight[0]}, 0, 1, gen);
          const auto dy = Tensor<float>::normal(g.output_shape(), 0, 1, gen);
          auto out = ops::conv2d_forward(x, w, &b, c.params).to_vector();
          auto dw = Tensor<float>::zeros(c.weight), db = Tensor<float>::zeros({c.weight[0]});
          const auto dx = ops::conv2d_backward(x, w, dy, c.params, dw, &db).to_vector();
          for (const auto& v : {dx, dw.to_vector(), db.to_vector()}) out.insert(out.end(), v.begin(), v.end());
          return out;
        };
        if (level != cpu::Isa::generic) {
          const std::size_t differ = testing::count_differences(run(1), run(2));
          INFO(differ << " values differ between 1 and 2 threads");
          CHECK(differ == 0);
        } else {
          // The Eigen path repeats itself for a given thread count, but Eigen
          // sizes its GEMM blocks by the thread count, so 1 and 2 threads round
          // differently (README: "CPU kernels").
          const std::size_t differ = testing::count_differences(run(2), run(2));
          INFO(differ << " values differ between two runs on 2 threads");
          CHECK(differ == 0);
        }
      }
    }
}

TEST_CASE("RESCNN_MAX_CPU_ISA caps the level, in any case", "[isa]") {
  CHECK(cpu::parse_isa("AVX512_bf16") == cpu::Isa::avx512_bf16);
  CHECK(cpu::parse_isa("Generic") == cpu::Isa::generic);
  CHECK(cpu::parse_isa("avx2") == cpu::Isa::avx2);
  ::setenv("RESCNN_MAX_CPU_ISA", "Avx2", 1);
  CHECK(cpu::isa_detail::isa_cap_from_environment() == cpu::Isa::avx2);
  ::unsetenv("RESCNN_MAX_CPU_ISA");
  CHECK(cpu::isa_detail::isa_cap_from_environment() == cpu::Isa::avx512_bf16);
  // A cap above the CPU runs at the CPU's best; the previous level comes back.
  const cpu::Isa before = cpu::isa();
  CHECK(cpu::set_max_isa(cpu::Isa::generic) == before);
  CHECK(cpu::isa() == cpu::Isa::generic);
  CHECK_FALSE(cpu::uses_winograd<float>(ops::conv2d_geometry({1, 16, 8, 8}, {16, 16, 3, 3}, {1, 1, 1, 1})));
  cpu::set_max_isa(cpu::Isa::avx512_bf16);
  CHECK(cpu::isa() == cpu::cpu_supported_isa());
  cpu::set_max_isa(before);
}
