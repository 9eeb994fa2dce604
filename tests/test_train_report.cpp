// Tests for the trainer's reporting: rescnn/train/format.hpp, metrics.hpp,
// plot.hpp, progress.hpp and report.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <locale>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "rescnn/train/format.hpp"
#include "rescnn/train/metrics.hpp"
#include "rescnn/train/plot.hpp"
#include "rescnn/train/progress.hpp"
#include "rescnn/train/report.hpp"
#include "support/skip.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
namespace train = rescnn::train;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using rescnn::IoError;
using rescnn::ValueError;
using train::EpochMetrics;
using train::History;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A fresh directory under the system temp dir, removed with its contents.
// Each test writes into its own directory, removed afterwards.
struct TempDir : rescnn::testing::TempDir {
  TempDir() : rescnn::testing::TempDir("rescnn_test_train_report") {}
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::vector<std::string> directory_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

EpochMetrics epoch_metrics(std::int64_t epoch) {
  const auto e = static_cast<double>(epoch);
  EpochMetrics m;
  m.epoch = epoch;
  m.train_loss = 1.0 / e;
  m.train_acc = 0.5 + 0.04 * e;
  m.val_loss = 1.1 / e;
  m.val_acc = 0.45 + 0.04 * e;
  m.lr = 0.1 * std::pow(0.5, e);
  m.images_per_second = 350.0 + e;
  m.seconds = 170.0 + e / 3;
  return m;
}

History history_of(std::int64_t epochs) {
  History h;
  for (std::int64_t e = 1; e <= epochs; ++e) h.add(epoch_metrics(e));
  return h;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

// The `points` attribute of every <polyline class="id" ...>.
std::vector<std::string> polyline_points(const std::string& svg, const std::string& id) {
  std::vector<std::string> result;
  const std::string open = "<polyline class=\"" + id + "\"";
  for (std::size_t pos = svg.find(open); pos != std::string::npos; pos = svg.find(open, pos + 1)) {
    const std::size_t end = svg.find("/>", pos);
    const std::size_t p = svg.find("points=\"", pos);
    REQUIRE(p < end);
    const std::size_t q = svg.find('"', p + 8);
    result.push_back(svg.substr(p + 8, q - (p + 8)));
  }
  return result;
}

std::size_t num_points(const std::string& points) { return points.empty() ? 0 : count(points, " ") + 1; }

// The <g class="series id"> ... </g> group of one series.
std::string series_group(const std::string& svg, const std::string& id) {
  const std::size_t begin = svg.find("<g class=\"series " + id + "\">");
  if (begin == std::string::npos) return {};
  return svg.substr(begin, svg.find("</g>", begin) - begin);
}

}  // namespace

// ---- format.hpp -------------------------------------------------------------

TEST_CASE("format helpers: fixed, round-trip, durations, parsing", "[train][format]") {
  CHECK(train::format_fixed(0.51234, 4) == "0.5123");
  CHECK(train::format_fixed(351.25, 1) == "351.2");  // round half to even on the exact binary value
  CHECK(train::format_fixed(2.0, 0) == "2");
  CHECK(train::format_fixed(-0.5, 2) == "-0.50");
  CHECK(train::format_fixed(kNaN, 4) == "nan");
  CHECK(train::format_fixed(-kNaN, 4) == "nan");
  CHECK(train::format_fixed(kInf, 1) == "inf");
  CHECK(train::format_fixed(-kInf, 1) == "-inf");

  CHECK(train::format_roundtrip(0.1 + 0.2) == "0.30000000000000004");
  CHECK(train::format_roundtrip(1e-300) == "1e-300");
  CHECK(train::format_roundtrip(0.5) == "0.5");

  CHECK(train::format_duration(0) == "0:00");
  CHECK(train::format_duration(42.4) == "0:42");
  CHECK(train::format_duration(59.6) == "1:00");
  CHECK(train::format_duration(725) == "12:05");
  CHECK(train::format_duration(3723) == "1:02:03");
  CHECK(train::format_duration(kNaN) == "-:--");
  CHECK(train::format_duration(-1) == "-:--");

  CHECK(train::parse_double("0.25") == 0.25);
  CHECK(std::isnan(*train::parse_double("nan")));
  CHECK(train::parse_double("-inf") == -kInf);
  CHECK_FALSE(train::parse_double(""));
  CHECK_FALSE(train::parse_double("0.5x"));
  CHECK_FALSE(train::parse_double(" 0.5"));
  CHECK_FALSE(train::parse_double("abc"));
  CHECK(train::parse_int64("12") == 12);
  CHECK_FALSE(train::parse_int64("1.5"));
  CHECK_FALSE(train::parse_int64("99999999999999999999"));
}

// ---- metrics.hpp ------------------------------------------------------------

TEST_CASE("format_epoch_line writes the exact log format", "[train][metrics]") {
  EpochMetrics m;
  m.epoch = 1;
  m.train_loss = 0.51234;
  m.train_acc = 0.8;
  m.val_loss = 0.40116;
  m.val_acc = 0.857142857;
  m.lr = 0.1;
  m.images_per_second = 351.24;
  m.seconds = 171.26;
  CHECK(train::format_epoch_line(m) ==
        "epoch=1 train_loss=0.5123 val_loss=0.4012 val_acc=0.8571 imgs_per_s=351.2 seconds=171.3");

  m.epoch = 12;
  m.train_loss = kNaN;
  m.val_loss = kInf;
  CHECK(train::format_epoch_line(m) ==
        "epoch=12 train_loss=nan val_loss=inf val_acc=0.8571 imgs_per_s=351.2 seconds=171.3");
}

TEST_CASE("format_epoch_line does not depend on the global locale", "[train][metrics]") {
  // A locale with ',' as decimal point would break printf-style formatting.
  // CI generates de_DE.UTF-8 (.ci/run); elsewhere it may be missing.
  std::locale old;
  try {
    std::locale::global(std::locale("de_DE.UTF-8"));
  } catch (const std::runtime_error&) {
    RESCNN_SKIP("the de_DE.UTF-8 locale is not installed (locale-gen de_DE.UTF-8)");
  }
  // The locale really has a decimal comma, or the check below proves nothing.
  char probe[16];
  std::snprintf(probe, sizeof probe, "%.1f", 0.5);
  REQUIRE(std::string(probe) == "0,5");
  EpochMetrics m = epoch_metrics(1);
  m.train_loss = 0.5;
  const std::string line = train::format_epoch_line(m);
  std::locale::global(old);
  CHECK_THAT(line, Contains("train_loss=0.5000"));
}

TEST_CASE("History keeps consecutive epochs", "[train][metrics]") {
  History h;
  CHECK(h.empty());
  CHECK_THROWS_AS(h.back(), ValueError);
  h.add(epoch_metrics(1));
  h.add(epoch_metrics(2));
  CHECK(h.epochs().size() == 2);
  CHECK(h.back().epoch == 2);
  CHECK_THROWS_WITH(h.add(epoch_metrics(4)), Contains("epoch 4 does not follow epoch 2"));
  CHECK_THROWS_AS(h.add(epoch_metrics(2)), ValueError);
  CHECK(h.epochs().size() == 2);

  History resumed;  // a history may start later (a resumed, trimmed run) but not at 0
  CHECK_THROWS_WITH(resumed.add(epoch_metrics(0)), Contains("epoch must be >= 1"));
  resumed.add(epoch_metrics(5));
  CHECK(resumed.back().epoch == 5);
}

TEST_CASE("CSV round trip keeps every double bit for bit", "[train][metrics][csv]") {
  TempDir dir;
  const fs::path file = dir.path / "history.csv";
  History h;
  EpochMetrics a = epoch_metrics(1);
  a.train_loss = 0.1 + 0.2;
  a.train_acc = 1e-300;
  a.val_loss = std::numeric_limits<double>::denorm_min();
  a.val_acc = std::numeric_limits<double>::max();
  a.lr = -0.0;
  h.add(a);
  EpochMetrics b = epoch_metrics(2);
  b.val_loss = kNaN;  // not measured
  b.val_acc = kInf;
  b.lr = -kInf;
  h.add(b);
  h.add(epoch_metrics(3));
  train::write_csv(h, file);

  const std::string text = read_text(file);
  CHECK(text.rfind("epoch,train_loss,train_acc,val_loss,val_acc,lr,imgs_per_s,seconds\n", 0) == 0);
  CHECK_THAT(text, Contains("\n1,0.30000000000000004,1e-300,"));
  CHECK(count(text, "\n") == 4);

  const History back = train::read_csv(file);
  REQUIRE(back.epochs().size() == h.epochs().size());
  for (std::size_t i = 0; i < h.epochs().size(); ++i) {
    const EpochMetrics& x = h.epochs()[i];
    const EpochMetrics& y = back.epochs()[i];
    CHECK(x.epoch == y.epoch);
    const double xs[] = {x.train_loss, x.train_acc, x.val_loss, x.val_acc, x.lr, x.images_per_second, x.seconds};
    const double ys[] = {y.train_loss, y.train_acc, y.val_loss, y.val_acc, y.lr, y.images_per_second, y.seconds};
    for (std::size_t c = 0; c < std::size(xs); ++c) {
      INFO("epoch " << x.epoch << " column " << c);
      if (std::isnan(xs[c]))
        CHECK(std::isnan(ys[c]));
      else
        CHECK(std::bit_cast<std::uint64_t>(xs[c]) == std::bit_cast<std::uint64_t>(ys[c]));
    }
  }
}

TEST_CASE("CSV of an empty history is the header alone and reads back empty", "[train][metrics][csv]") {
  TempDir dir;
  const fs::path file = dir.path / "h.csv";
  train::write_csv(History{}, file);
  CHECK(read_text(file) == "epoch,train_loss,train_acc,val_loss,val_acc,lr,imgs_per_s,seconds\n");
  CHECK(train::read_csv(file).empty());
}

TEST_CASE("CSV reading accepts CRLF lines and a trailing blank line", "[train][metrics][csv]") {
  TempDir dir;
  const fs::path file = dir.path / "h.csv";
  write_text(file,
             "epoch,train_loss,train_acc,val_loss,val_acc,lr,imgs_per_s,seconds\r\n"
             "1,0.5,0.8,0.4,0.85,0.1,351.2,171.3\r\n"
             "2,0.25,0.9,0.3,0.88,0.05,352,170\r\n\r\n");
  const History h = train::read_csv(file);
  REQUIRE(h.epochs().size() == 2);
  CHECK(h.back().epoch == 2);
  CHECK(h.back().lr == 0.05);
  CHECK(h.epochs()[0].seconds == 171.3);
}

TEST_CASE("CSV reading reports each problem with file and line", "[train][metrics][csv]") {
  TempDir dir;
  const fs::path file = dir.path / "bad.csv";
  const std::string header = "epoch,train_loss,train_acc,val_loss,val_acc,lr,imgs_per_s,seconds\n";
  const std::string row1 = "1,0.5,0.8,0.4,0.85,0.1,351.2,171.3\n";
  const auto error_of = [&](const std::string& text) {
    write_text(file, text);
    try {
      (void)train::read_csv(file);
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    FAIL("read_csv accepted: " << text);
    return std::string();
  };

  SECTION("missing file") {
    CHECK_THROWS_AS(train::read_csv(dir.path / "nope.csv"), IoError);
    CHECK_THROWS_WITH(train::read_csv(dir.path / "nope.csv"), Contains("nope.csv") && Contains("no such file"));
  }
  SECTION("empty file") { CHECK_THAT(error_of(""), Contains("bad.csv") && Contains("is empty")); }
  SECTION("bad header") {
    const std::string msg = error_of("epoch,loss\n" + row1);
    CHECK_THAT(msg, Contains("bad.csv") && Contains("line 1") && Contains("expected the header") &&
                        Contains("found 'epoch,loss'"));
  }
  SECTION("short row") {
    const std::string msg = error_of(header + row1 + "2,0.5,0.8\n");
    CHECK_THAT(msg, Contains("bad.csv") && Contains("line 3") && Contains("expected 8 fields but found 3"));
  }
  SECTION("long row") {
    CHECK_THAT(error_of(header + "1,0.5,0.8,0.4,0.85,0.1,351.2,171.3,9\n"),
               Contains("line 2") && Contains("expected 8 fields but found 9"));
  }
  SECTION("blank line in the middle") {
    CHECK_THAT(error_of(header + "\n" + row1), Contains("line 2") && Contains("expected 8 fields but found 1"));
  }
  SECTION("non-numeric field") {
    const std::string msg = error_of(header + "1,0.5,0.8,abc,0.85,0.1,351.2,171.3\n");
    CHECK_THAT(msg, Contains("bad.csv") && Contains("line 2") && Contains("column 'val_loss'") &&
                        Contains("'abc' is not a number"));
  }
  SECTION("number with trailing junk") {
    CHECK_THAT(error_of(header + "1,0.5,0.8,0.4,0.85,0.1x,351.2,171.3\n"),
               Contains("column 'lr'") && Contains("'0.1x' is not a number"));
  }
  SECTION("empty field") {
    CHECK_THAT(error_of(header + "1,0.5,0.8,0.4,0.85,0.1,,171.3\n"),
               Contains("column 'imgs_per_s'") && Contains("'' is not a number"));
  }
  SECTION("fractional epoch") {
    CHECK_THAT(error_of(header + "1.5,0.5,0.8,0.4,0.85,0.1,351.2,171.3\n"),
               Contains("column 'epoch'") && Contains("'1.5' is not an integer"));
  }
  SECTION("epoch zero") {
    CHECK_THAT(error_of(header + "0,0.5,0.8,0.4,0.85,0.1,351.2,171.3\n"),
               Contains("line 2") && Contains("epoch 0 is not >= 1"));
  }
  SECTION("non-consecutive epochs") {
    const std::string msg = error_of(header + row1 + "3,0.5,0.8,0.4,0.85,0.1,351.2,171.3\n");
    CHECK_THAT(msg, Contains("bad.csv") && Contains("line 3") && Contains("epoch 3 does not follow epoch 1") &&
                        Contains("consecutive"));
  }
}

TEST_CASE("write_csv replaces the old file atomically and leaves no temporaries", "[train][metrics][csv]") {
  TempDir dir;
  const fs::path file = dir.path / "history.csv";
  write_text(file, "old contents that are longer than nothing\n");
  History h;
  for (std::int64_t e = 1; e <= 3; ++e) {
    h.add(epoch_metrics(e));
    train::write_csv(h, file);  // rewritten after every epoch, as the trainer does
    CHECK(directory_names(dir.path) == std::vector<std::string>{"history.csv"});
    CHECK(train::read_csv(file).epochs().size() == static_cast<std::size_t>(e));
  }
  CHECK(read_text(file).find("old contents") == std::string::npos);

  // A directory that does not exist: IoError naming the file, nothing created.
  const fs::path missing = dir.path / "no_such_dir" / "h.csv";
  CHECK_THROWS_AS(train::write_csv(h, missing), IoError);
  CHECK_THROWS_WITH(train::write_csv(h, missing), Contains("h.csv"));
  CHECK(directory_names(dir.path) == std::vector<std::string>{"history.csv"});
}

// ---- plot.hpp ---------------------------------------------------------------

TEST_CASE("nice_step picks the smallest 1-2-5 step that covers the range in max_ticks", "[train][plot]") {
  // [0.23, 0.91], 6 ticks: 0.1 would need 0.2..1.0 (9 ticks), 0.2 needs 0.2..1.0 (5 ticks).
  CHECK(train::nice_step(0.23, 0.91, 6) == Approx(0.2));
  // With room for 10 ticks, 0.1 fits (0.2..1.0 is 9 ticks).
  CHECK(train::nice_step(0.23, 0.91, 10) == Approx(0.1));
  CHECK(train::nice_step(0.0, 2.3, 6) == Approx(0.5));    // 0..2.5: 6 ticks
  CHECK(train::nice_step(0.0, 10.0, 6) == Approx(2.0));   // 0..10: 6 ticks
  CHECK(train::nice_step(0.0, 10.0, 5) == Approx(5.0));   // 2 would need 6 ticks
  CHECK(train::nice_step(120, 480, 6) == Approx(100.0));  // 100..500: 5 ticks
  CHECK(train::nice_step(-0.3, 0.3, 6) == Approx(0.2));   // -0.4..0.4: 5 ticks
  // A value on a multiple of the step does not cost an extra tick (0.6/0.2 rounds below 3).
  CHECK(train::nice_step(0.6, 1.6, 6) == Approx(0.2));
  // Integer steps for epochs: 1..10 all labelled, 1..30 every 5.
  CHECK(train::nice_step(1, 10, 11, 1.0) == 1.0);
  CHECK(train::nice_step(1, 30, 11, 1.0) == 5.0);
  CHECK(train::nice_step(1, 1, 11, 1.0) == 1.0);
  CHECK_THROWS_AS(train::nice_step(1, 0, 6), ValueError);
  CHECK_THROWS_AS(train::nice_step(0, kNaN, 6), ValueError);
  CHECK_THROWS_AS(train::nice_step(0, 1, 1), ValueError);
}

TEST_CASE("nice_axis covers the data with nice ticks", "[train][plot]") {
  const train::NiceAxis a = train::nice_axis(0.23, 0.91, 6);
  CHECK(a.lo == Approx(0.2));
  CHECK(a.hi == Approx(1.0));
  REQUIRE(a.ticks.size() == 5);
  const double expected[] = {0.2, 0.4, 0.6, 0.8, 1.0};
  for (std::size_t i = 0; i < 5; ++i) CHECK(a.ticks[i] == Approx(expected[i]));
  CHECK(a.decimals == 1);
  CHECK(train::format_fixed(a.ticks[2], a.decimals) == "0.6");

  const train::NiceAxis b = train::nice_axis(0.0312, 2.31, 6);
  CHECK(b.lo == 0.0);
  CHECK(b.hi == Approx(2.5));
  CHECK(b.decimals == 1);

  const train::NiceAxis c = train::nice_axis(0.5, 0.5, 6);  // one value: widened by 10%
  CHECK(c.lo <= 0.45);
  CHECK(c.hi >= 0.55);
  CHECK(c.ticks.size() >= 2);
  CHECK(c.decimals == 2);

  for (auto [lo, hi] :
       {std::pair{0.0, 1.0}, std::pair{0.013, 0.0171}, std::pair{-5.0, 1234.0}, std::pair{1e6, 1e6 + 3}}) {
    INFO(lo << " " << hi);
    const train::NiceAxis ax = train::nice_axis(lo, hi, 6);
    CHECK(ax.lo <= lo);
    CHECK(ax.hi >= hi);
    CHECK(ax.ticks.size() >= 2);
    CHECK(ax.ticks.size() <= 6);
  }
}

TEST_CASE("Scale maps data to pixels linearly, y growing upwards", "[train][plot]") {
  const train::detail::Scale y{0.0, 1.0, 300.0, 100.0};
  CHECK(y(0.0) == 300.0);
  CHECK(y(1.0) == 100.0);
  CHECK(y(0.25) == 250.0);
}

TEST_CASE("render_svg draws the three curves, train acc dashed, ticks, legend and title", "[train][plot]") {
  const History h = history_of(5);
  train::PlotOptions opt;
  opt.title = "a<b & \"c\"";
  const std::string svg = train::render_svg(h, opt);

  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\"", 0) == 0);
  CHECK(svg.find("</svg>") == svg.size() - 7);  // "</svg>\n"
  CHECK_THAT(svg, Contains("font-family=\"sans-serif\""));
  CHECK(svg.find("<script") == std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(count(svg, "<g") == count(svg, "</g>"));
  CHECK(count(svg, "<text") == count(svg, "</text>"));

  for (const char* id : {"train-loss", "train-acc", "val-loss", "val-acc"}) {
    INFO(id);
    const auto lines = polyline_points(svg, id);
    REQUIRE(lines.size() == 1);
    CHECK(num_points(lines[0]) == 5);
    CHECK(count(series_group(svg, id), "<circle") == 5);
  }
  CHECK_THAT(svg, Contains("class=\"train-acc\" fill=\"none\" stroke=\"#bf00bf\" stroke-width=\"1.5\" "
                           "stroke-dasharray=\"6,3\""));
  CHECK(svg.find("<polyline class=\"train-loss\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points") !=
        std::string::npos);

  // Title escaped, legend labels, axis label, tick labels.
  CHECK_THAT(svg, Contains(">a&lt;b &amp; &quot;c&quot;</text>"));
  CHECK(svg.find("a<b") == std::string::npos);
  for (const char* label : {">train loss<", ">train acc<", ">val loss<", ">val acc<", ">epoch<"})
    CHECK_THAT(svg, Contains(label));
  // y: train loss 0.2..1, val loss 0.22..1.1, accs 0.49..0.7: axis 0.0..1.2 by 0.2.
  for (const char* tick : {">0.2<", ">0.6<", ">1.0<", ">1.2<"}) CHECK_THAT(svg, Contains(tick));
  // x: every epoch.
  for (const char* tick : {">1<", ">2<", ">3<", ">4<", ">5<"}) CHECK_THAT(svg, Contains(tick));
}

TEST_CASE("render_svg leaves out train acc on request and series with nothing to draw", "[train][plot]") {
  History h;
  for (std::int64_t e = 1; e <= 3; ++e) {
    EpochMetrics m = epoch_metrics(e);
    m.val_loss = kNaN;  // no validation set
    m.val_acc = kNaN;
    h.add(m);
  }
  train::PlotOptions opt;
  opt.train_acc = false;
  const std::string svg = train::render_svg(h, opt);
  CHECK(polyline_points(svg, "train-loss").size() == 1);
  CHECK(svg.find("train-acc") == std::string::npos);
  CHECK(svg.find("val-") == std::string::npos);
  CHECK(svg.find(">val loss<") == std::string::npos);
  CHECK(svg.find("class=\"title\"") == std::string::npos);  // no title given
}

TEST_CASE("render_svg skips NaN and infinite points, breaking the line", "[train][plot]") {
  History h = History{};
  for (std::int64_t e = 1; e <= 6; ++e) {
    EpochMetrics m = epoch_metrics(e);
    if (e == 3) m.train_loss = kNaN;
    if (e == 6) m.train_loss = kInf;
    if (e == 1) m.val_acc = -kInf;
    h.add(m);
  }
  const std::string svg = train::render_svg(h);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
  const auto loss = polyline_points(svg, "train-loss");  // epochs 1-2 and 4-5
  REQUIRE(loss.size() == 2);
  CHECK(num_points(loss[0]) == 2);
  CHECK(num_points(loss[1]) == 2);
  CHECK(count(series_group(svg, "train-loss"), "<circle") == 4);
  const auto acc = polyline_points(svg, "val-acc");  // epochs 2-6
  REQUIRE(acc.size() == 1);
  CHECK(num_points(acc[0]) == 5);
  CHECK(num_points(polyline_points(svg, "val-loss").at(0)) == 6);
  // A NaN between two single points: markers only, no line.
  History g;
  for (std::int64_t e = 1; e <= 3; ++e) {
    EpochMetrics m = epoch_metrics(e);
    if (e == 2) m.train_loss = kNaN;
    g.add(m);
  }
  const std::string svg2 = train::render_svg(g);
  CHECK(polyline_points(svg2, "train-loss").empty());
  CHECK(count(series_group(svg2, "train-loss"), "<circle") == 2);
}

TEST_CASE("render_svg of a single epoch draws markers and one x tick", "[train][plot]") {
  const std::string svg = train::render_svg(history_of(1));
  for (const char* id : {"train-loss", "train-acc", "val-loss", "val-acc"}) {
    INFO(id);
    CHECK(polyline_points(svg, id).empty());
    CHECK(count(series_group(svg, id), "<circle") == 1);
  }
  const std::size_t x_ticks = svg.find("<g class=\"x-ticks\"");
  REQUIRE(x_ticks != std::string::npos);
  CHECK(count(svg.substr(x_ticks, svg.find("</g>", x_ticks) - x_ticks), "<text") == 1);
  CHECK(svg.find("nan") == std::string::npos);
}

TEST_CASE("render_svg with every value NaN draws empty axes", "[train][plot]") {
  History h;
  EpochMetrics m;
  m.epoch = 1;
  h.add(m);
  m.epoch = 2;
  h.add(m);
  const std::string svg = train::render_svg(h);
  CHECK(svg.find("<polyline") == std::string::npos);
  CHECK(svg.find("<circle") == std::string::npos);
  CHECK_THAT(svg, Contains(">0.0<") && Contains(">1.0<"));
}

TEST_CASE("render_svg ticks for long runs are integers on a nice step", "[train][plot]") {
  const std::string svg = train::render_svg(history_of(30));
  const std::size_t begin = svg.find("<g class=\"x-ticks\"");
  const std::string ticks = svg.substr(begin, svg.find("</g>", begin) - begin);
  CHECK(count(ticks, "<text") == 6);  // 5, 10, ..., 30
  CHECK_THAT(ticks, Contains(">5<") && Contains(">30<"));
  CHECK(num_points(polyline_points(svg, "train-loss").at(0)) == 30);
}

TEST_CASE("write_svg writes atomically and rejects an empty history and bad options", "[train][plot]") {
  TempDir dir;
  const fs::path file = dir.path / "curves.svg";
  write_text(file, "old");
  train::write_svg(history_of(4), file, {.title = "ResNet-18 on Fashion-MNIST"});
  const std::string text = read_text(file);
  CHECK(text.rfind("<svg", 0) == 0);
  CHECK_THAT(text, Contains("ResNet-18 on Fashion-MNIST"));
  CHECK(directory_names(dir.path) == std::vector<std::string>{"curves.svg"});

  CHECK_THROWS_AS(train::write_svg(History{}, dir.path / "empty.svg"), ValueError);
  CHECK_THROWS_WITH(train::write_svg(History{}, dir.path / "empty.svg"),
                    Contains("empty.svg") && Contains("history is empty"));
  train::PlotOptions narrow;
  narrow.width = 10;
  CHECK_THROWS_WITH(train::write_svg(history_of(2), dir.path / "w.svg", narrow), Contains("PlotOptions::width"));
  train::PlotOptions flat;
  flat.height = 0;
  CHECK_THROWS_WITH(train::write_svg(history_of(2), dir.path / "h.svg", flat), Contains("PlotOptions::height"));
  CHECK(directory_names(dir.path) == std::vector<std::string>{"curves.svg"});
}

// ---- progress.hpp -----------------------------------------------------------

TEST_CASE("format_progress_line draws the bar, counts, loss, throughput and ETA", "[train][progress]") {
  train::ProgressState s;
  s.epoch = 2;
  s.num_epochs = 10;
  s.steps_done = 234;
  s.total_steps = 469;
  s.loss = 0.51234;
  s.images_per_second = 351.2;
  s.eta_seconds = 42;
  CHECK(train::format_progress_line(s) ==
        "epoch 2/10 [=========>          ] 234/469  loss 0.5123  351 img/s  ETA 0:42");

  s.steps_done = 0;  // nothing measured yet
  s.eta_seconds = kNaN;
  CHECK(train::format_progress_line(s) == "epoch 2/10 [>                   ]   0/469  loss -  - img/s  ETA -:--");

  s.steps_done = 469;
  s.eta_seconds = 0;
  CHECK(train::format_progress_line(s) ==
        "epoch 2/10 [====================] 469/469  loss 0.5123  351 img/s  ETA 0:00");

  // Big numbers shrink the bar; the line never exceeds 79 columns.
  s.epoch = 123456;
  s.num_epochs = 999999;
  s.steps_done = 12345;
  s.total_steps = 99999999;
  s.loss = 123456.789;
  s.images_per_second = 1234567.0;
  s.eta_seconds = 360000;
  const std::string wide = train::format_progress_line(s);
  CHECK(wide.size() <= 79);
  CHECK_THAT(wide, Contains("[>         ]"));
  s.loss = 1e300;  // absurd: cut, not wrapped
  CHECK(train::format_progress_line(s).size() == 79);
}

TEST_CASE("ProgressBar redraws in place and clears the line at the end", "[train][progress]") {
  std::ostringstream os;
  train::ProgressBar bar(os, true, std::chrono::milliseconds(0));  // no throttling: every update draws
  bar.start(2, 10, 4);
  bar.update(1, 0.9, 300);
  bar.update(2, 0.8, 310);
  bar.update(3, 0.7, 320);
  bar.update(4, 0.6, 330);
  CHECK(bar.redraws() == 5);
  const std::string before_finish = os.str();
  bar.finish();
  const std::string out = os.str();

  CHECK(out.find('\n') == std::string::npos);  // never a new line
  CHECK(count(out, "\r") == 5 + 2);            // each frame, plus the erase's two
  CHECK_THAT(out, Contains("epoch 2/10 [=====>              ] 1/4  loss 0.9000  300 img/s  ETA "));
  CHECK_THAT(before_finish, EndsWith("epoch 2/10 [====================] 4/4  loss 0.6000  330 img/s  ETA 0:00"));
  // The erase: back to column 0, spaces over the whole bar, back to column 0.
  const std::string last_frame = before_finish.substr(before_finish.rfind('\r') + 1);
  CHECK(out.substr(before_finish.size()) == "\r" + std::string(last_frame.size(), ' ') + "\r");
  // finish() again, or with nothing started, writes nothing.
  bar.finish();
  CHECK(os.str() == out);
}

TEST_CASE("ProgressBar pads a shorter frame over a longer one", "[train][progress]") {
  std::ostringstream os;
  train::ProgressBar bar(os, true, std::chrono::milliseconds(0));
  bar.start(1, 1, 10);
  bar.update(1, 12345.678, 99999);  // long numbers
  bar.update(2, 0.5, 1);            // short numbers
  const std::string out = os.str();
  const std::size_t second = out.rfind('\r');
  const std::size_t first = out.rfind('\r', second - 1);
  CHECK(out.size() - second == second - first);  // same width on screen: old text covered
}

TEST_CASE("ProgressBar throttles redraws by time but always draws the final state", "[train][progress]") {
  SECTION("a long interval: only the start and the last step are drawn") {
    std::ostringstream os;
    train::ProgressBar bar(os, true, std::chrono::hours(1));
    bar.start(1, 3, 1000);
    for (std::int64_t i = 1; i <= 1000; ++i) bar.update(i, 1.0 / static_cast<double>(i), 100);
    CHECK(bar.redraws() == 2);
    CHECK_THAT(os.str(), Contains("1000/1000  loss 0.0010"));
    bar.finish();
    CHECK(bar.redraws() == 2);
  }
  SECTION("finish draws an update that throttling skipped") {
    std::ostringstream os;
    train::ProgressBar bar(os, true, std::chrono::hours(1));
    bar.start(1, 3, 100);
    bar.update(57, 0.25, 100);
    CHECK(bar.redraws() == 1);
    CHECK(os.str().find(" 57/100") == std::string::npos);
    bar.finish();
    CHECK(bar.redraws() == 2);
    CHECK_THAT(os.str(), Contains(" 57/100  loss 0.2500"));
  }
  SECTION("the default interval: at most one frame per 100 ms") {
    std::ostringstream os;
    train::ProgressBar bar(os, true);
    const auto t0 = std::chrono::steady_clock::now();
    bar.start(1, 1, 20000);
    for (std::int64_t i = 1; i <= 20000; ++i) bar.update(i, 0.5, 100);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // start + one per elapsed 100 ms + the final one.
    CHECK(bar.redraws() <= 2 + static_cast<std::int64_t>(ms / 100));
    CHECK_THAT(os.str(), Contains("20000/20000"));
  }
}

TEST_CASE("ProgressBar ETA comes from the average step time", "[train][progress]") {
  std::ostringstream os;
  train::ProgressBar bar(os, true, std::chrono::milliseconds(0));
  bar.start(1, 1, 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bar.update(1, 0.5, 100);  // >= 20 ms per step, 999 to go: >= 20 s
  const std::string out = os.str();
  const std::size_t eta = out.rfind("ETA ");
  REQUIRE(eta != std::string::npos);
  const std::string text = out.substr(eta + 4);
  CHECK(text != "-:--");
  CHECK(text != "0:00");
  CHECK(text.find(':') != std::string::npos);
}

TEST_CASE("a disabled ProgressBar writes nothing", "[train][progress]") {
  std::ostringstream os;
  train::ProgressBar bar(os, false);
  CHECK_FALSE(bar.enabled());
  bar.start(1, 2, 10);
  bar.update(5, 0.5, 100);
  bar.update(10, 0.4, 100);
  bar.finish();
  CHECK(os.str().empty());
  CHECK(bar.redraws() == 0);

  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    train::ProgressBar fbar(f, false);
    fbar.start(1, 1, 3);
    fbar.update(3, 0.1, 1);
    fbar.finish();
  }
  CHECK(std::ftell(f) == 0);
  std::fclose(f);
}

TEST_CASE("ProgressBar writes to a FILE and clears a bar left on screen when destroyed", "[train][progress]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  CHECK_FALSE(train::is_terminal(f));  // a file is not a terminal
  CHECK_FALSE(train::is_terminal(nullptr));
  {
    train::ProgressBar bar(f, true);
    bar.start(3, 5, 8);
    bar.update(8, 0.125, 512);
    // no finish(): an exception ended the epoch
  }
  std::rewind(f);
  std::string out;
  for (int c = std::fgetc(f); c != EOF; c = std::fgetc(f)) out += static_cast<char>(c);
  std::fclose(f);
  CHECK_THAT(out, Contains("epoch 3/5 [====================] 8/8  loss 0.1250  512 img/s  ETA 0:00"));
  CHECK_THAT(out, EndsWith(std::string(10, ' ') + "\r"));
}

TEST_CASE("ProgressBar rejects bad arguments", "[train][progress]") {
  std::ostringstream os;
  train::ProgressBar bar(os, true);
  CHECK_THROWS_WITH(bar.update(1, 0.5, 1), Contains("call start() first"));
  CHECK_THROWS_WITH(bar.start(0, 10, 5), Contains("epoch"));
  CHECK_THROWS_WITH(bar.start(11, 10, 5), Contains("1 <= epoch <= num_epochs"));
  CHECK_THROWS_WITH(bar.start(1, 10, 0), Contains("total_steps must be >= 1"));
  bar.start(1, 10, 5);
  CHECK_THROWS_WITH(bar.update(6, 0.5, 1), Contains("steps_done must be in [0, 5], got 6"));
  CHECK_THROWS_AS(bar.update(-1, 0.5, 1), ValueError);
  bar.finish();
}

namespace {

// Predictions of 3 classes with known counts: (true, predicted) pairs, each
// sample's loss its index's reversal, so that the worst are known.
train::SamplePredictions three_class_predictions() {
  const std::vector<std::pair<std::int64_t, std::int64_t>> pairs = {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {1, 1},
                                                                    {1, 2}, {2, 0}, {2, 2}, {2, 2}, {0, 2}, {1, 0}};
  train::SamplePredictions p;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    p.label.push_back(pairs[i].first);
    p.predicted.push_back(pairs[i].second);
    p.loss.push_back(pairs[i].first == pairs[i].second ? 0.1 : 1.0 + static_cast<double>(i % 4));
    p.confidence.push_back(0.5);
  }
  return p;
}

const std::vector<std::string_view> kThreeNames = {"cat", "dog", "fish & chips"};

// Every match of `attribute="..."` in `text`, in order.
std::vector<std::string> attribute_values(const std::string& text, const std::string& attribute) {
  std::vector<std::string> out;
  const std::string key = attribute + "=\"";
  for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    const std::size_t start = at + key.size();
    out.push_back(text.substr(start, text.find('"', start) - start));
  }
  return out;
}

}  // namespace

TEST_CASE("ConfusionMatrix counts (true, predicted) pairs; per-class accuracy lines name each class",
          "[train][report]") {
  const auto p = three_class_predictions();
  const train::ConfusionMatrix cm(p, 3);
  REQUIRE(cm.total() == 12);
  REQUIRE(cm.correct() == 7);
  REQUIRE(cm.accuracy() == 7.0 / 12.0);
  const std::int64_t expected[3][3] = {{2, 1, 1}, {1, 3, 1}, {1, 0, 2}};
  for (std::int64_t r = 0; r < 3; ++r)
    for (std::int64_t c = 0; c < 3; ++c) REQUIRE(cm.count(r, c) == expected[r][c]);
  REQUIRE(cm.class_total(1) == 5);
  REQUIRE(cm.class_accuracy(1) == 0.6);
  const auto lines = train::per_class_accuracy_lines(cm, kThreeNames);
  REQUIRE(lines == std::vector<std::string>{"class=cat correct=2 total=4 acc=0.5000",
                                            "class=dog correct=3 total=5 acc=0.6000",
                                            "class=fish & chips correct=2 total=3 acc=0.6667"});
  train::ConfusionMatrix empty_class(2);
  empty_class.add(0, 0);
  REQUIRE(std::isnan(empty_class.class_accuracy(1)));
  CHECK_THROWS_WITH(empty_class.add(2, 0), Contains("ConfusionMatrix: (2, 0) is outside the 2 classes"));
  CHECK_THROWS_WITH(train::ConfusionMatrix(0), Contains("num_classes must be >= 1, got 0"));
  CHECK_THROWS_WITH(train::per_class_accuracy_lines(cm, std::vector<std::string_view>{"a", "b"}),
                    Contains("per_class_accuracy_lines: 2 class names for 3 classes"));
}

TEST_CASE("render_confusion_svg: one cell per pair with its count, the class names on both axes", "[train][report]") {
  const train::ConfusionMatrix cm(three_class_predictions(), 3);
  const std::string svg = train::render_confusion_svg(cm, kThreeNames, "A <test> run");
  REQUIRE(svg.rfind("<?xml", 0) == 0);
  REQUIRE(svg.ends_with("</svg>\n"));
  CHECK_THAT(svg, Contains("A &lt;test&gt; run"));
  const auto trues = attribute_values(svg, "data-true"), predicted = attribute_values(svg, "data-predicted"),
             counts = attribute_values(svg, "data-count");
  REQUIRE(trues.size() == 9);
  REQUIRE(predicted.size() == 9);
  REQUIRE(counts.size() == 9);
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < 9; ++i) {
    const auto r = std::stoll(trues[i]), c = std::stoll(predicted[i]), n = std::stoll(counts[i]);
    REQUIRE(n == cm.count(r, c));
    sum += n;
  }
  REQUIRE(sum == cm.total());
  // Each name labels a row (true) and a column (predicted).
  for (const std::string name : {"cat", "dog", "fish &amp; chips"})
    for (const std::string axis : {"true", "predicted"}) {
      INFO(axis << " " << name);
      const std::size_t at = svg.find("class=\"" + axis + "-label\"");
      bool labelled = false;
      for (std::size_t k = at; k != std::string::npos; k = svg.find("class=\"" + axis + "-label\"", k + 1))
        labelled |= svg.compare(svg.find('>', k) + 1, name.size() + 7, name + "</text>") == 0;
      CHECK(labelled);
    }
  // Each name twice: once down the side (true), once across the top (predicted).
  std::size_t dog = 0;
  for (std::size_t at = svg.find(">dog</text>"); at != std::string::npos; at = svg.find(">dog</text>", at + 1)) ++dog;
  REQUIRE(dog == 2);
  CHECK_THAT(svg, Contains("12 images, accuracy 0.5833"));
}

TEST_CASE("worst_samples and the worst-images grid: misclassified images, highest loss first", "[train][report]") {
  const auto p = three_class_predictions();
  // Wrong: 2 (loss 3), 6 (3), 7 (4), 10 (3), 11 (4); ties by index.
  REQUIRE(train::worst_samples(p, 3) == std::vector<std::int64_t>{7, 11, 2});
  REQUIRE(train::worst_samples(p, 100) == std::vector<std::int64_t>{7, 11, 2, 6, 10});
  REQUIRE(train::worst_samples(p, 0).empty());
  CHECK_THROWS_WITH(train::worst_samples(p, -1), Contains("count -1 is negative"));

  rescnn::data::ImageSet set;
  set.height = 3;
  set.width = 2;
  for (std::int64_t i = 0; i < p.size(); ++i) {
    set.labels.push_back(p.label[static_cast<std::size_t>(i)]);
    for (int k = 0; k < 6; ++k) set.pixels.push_back(static_cast<std::uint8_t>(i * 20 + k));
  }
  const std::string svg = train::render_worst_images_svg(set, p, kThreeNames, {.count = 4, .columns = 3});
  REQUIRE(attribute_values(svg, "data-index") == std::vector<std::string>{"7", "11", "2", "6"});
  // Each tile: the image as an embedded PNG, its true and its predicted class.
  const auto hrefs = attribute_values(svg, "xlink:href");
  REQUIRE(hrefs.size() == 4);
  for (const auto& href : hrefs) REQUIRE(href.rfind("data:image/png;base64,iVBORw0KGgo", 0) == 0);
  // Image 7's own pixels, encoded as the grid encodes them.
  const std::string png7 = rescnn::io::encode_png_gray(std::span(set.pixels.data() + 7 * 6, 6), 2, 3);
  REQUIRE(hrefs[0] == "data:image/png;base64," + rescnn::io::base64(png7));
  CHECK_THAT(svg, Contains("true: fish &amp; chips"));  // image 7: fish predicted as cat
  CHECK_THAT(svg, Contains("predicted: cat (50%)"));
  CHECK_THROWS_WITH(train::render_worst_images_svg(set, p, std::vector<std::string_view>{"a"}),
                    Contains("class 2 has no name (1 names)"));
  set.labels.pop_back();
  CHECK_THROWS_WITH(train::render_worst_images_svg(set, p, kThreeNames),
                    Contains("12 predictions for a set of 11 images"));
  // Nothing wrong: the grid says so.
  auto all_right = p;
  all_right.predicted = all_right.label;
  set.labels.push_back(0);
  CHECK_THAT(train::render_worst_images_svg(set, all_right, kThreeNames),
             Contains("every image is classified correctly"));
}
