// rescnn/train/plot.hpp — the training curves as an SVG picture.
//
// The picture d2l's `Animator` draws while its trainer runs: epochs on the x
// axis, loss and accuracy together on one y axis (both are O(1) numbers, so
// one axis serves), a grid, a legend. d2l plots train loss, train acc and test
// acc with the line styles '-', 'm--', 'g-.'; we plot train loss (blue,
// solid), train acc (magenta, dashed), val acc (green, dash-dot) and val loss
// (red, dotted: d2l's next style, 'r:'), each with a marker per epoch.
//
// The file is self-contained SVG 1.1: no scripts, no external fonts or
// styles, user text escaped, every coordinate a finite number. Non-finite
// values (a diverged loss, a metric that was not measured) are skipped: the
// line breaks there, as in matplotlib. A series with no finite value at all
// (no validation set) is left out of the picture and the legend.
//
// Axis ticks are "nice numbers" (see `nice_step`).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/io/safetensors.hpp"  // io::detail::atomic_write
#include "rescnn/train/format.hpp"
#include "rescnn/train/metrics.hpp"

namespace rescnn::train {

struct PlotOptions {
  std::string title;      // drawn above the plot; empty: no title
  int width = 640;        // pixels, >= 320
  int height = 400;       // pixels, >= 200
  bool train_acc = true;  // draw the train accuracy too (dashed), as d2l does
};

// ---- nice ticks -------------------------------------------------------------

// The tick step for showing [lo, hi] with at most `max_ticks` ticks: the
// smallest step of the form 1, 2 or 5 × 10^k (and >= `min_step`) for which
// the ticks at the multiples of the step covering [lo, hi] — from
// floor(lo/step)·step to ceil(hi/step)·step — number at most `max_ticks`.
// E.g. [0.23, 0.91] with 6 ticks: 0.1 needs 0.2..1.0, 9 ticks; 0.2 needs
// 0.2..1.0, 5 ticks: the step is 0.2. Requires finite lo <= hi and
// max_ticks >= 2; lo == hi is widened first (see `nice_axis`).
inline double nice_step(double lo, double hi, int max_ticks, double min_step = 0) {
  check<ValueError>(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_step: need finite lo <= hi, got [", lo,
                    ", ", hi, "]");
  check<ValueError>(max_ticks >= 2, "nice_step: max_ticks must be >= 2, got ", max_ticks);
  check<ValueError>(std::isfinite(hi - lo), "nice_step: the range [", lo, ", ", hi, "] is too wide to plot");
  // A relative slack absorbs rounding (0.6 / 0.2 == 2.9999999999999996), so
  // a value on a multiple of the step does not grow the range by a tick.
  constexpr double slack = 1e-9;
  const auto tick_count = [&](double step) { return std::ceil(hi / step - slack) - std::floor(lo / step + slack) + 1; };
  const double range = std::max(hi - lo, std::abs(hi) * 1e-12);
  // Start a decade below the step that would give exactly max_ticks ticks and
  // walk up 1, 2, 5, 10, 20, ...: the first step that fits is the smallest.
  int k = static_cast<int>(std::floor(std::log10(range > 0 ? range / max_ticks : 1.0))) - 1;
  for (;; ++k) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double step = m * std::pow(10.0, k);
      if (step < min_step || !(step > 0)) continue;
      if (tick_count(step) <= max_ticks) return step;
    }
  }
}

// Decimal places that show every multiple of `step` exactly: 0.2 -> 1,
// 0.05 -> 2, 5 -> 0.
inline int tick_decimals(double step) { return std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))); }

// An axis: its data interval [lo, hi] and its tick values. lo and hi are the
// first and last ticks (or the data's own ends, where those lie a rounding
// error outside them).
struct NiceAxis {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> ticks;
  int decimals = 0;  // for the tick labels
};

// The nice axis covering [lo, hi] with at most `max_ticks` ticks. A
// degenerate range (lo == hi, one value) is widened by 10% of the value
// (±1 around 0) so the axis still has extent.
inline NiceAxis nice_axis(double lo, double hi, int max_ticks = 6) {
  if (lo == hi) {
    const double d = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  NiceAxis axis;
  axis.step = nice_step(lo, hi, max_ticks);
  // Ticks as i·m / 10^-k rather than i·step: dividing by an exact power of
  // ten gives the double nearest the decimal (0.013, not 0.013000000000000001).
  const int k = static_cast<int>(std::floor(std::log10(axis.step) + 1e-9));
  const double m = std::round(axis.step / std::pow(10.0, k));
  const double first = std::floor(lo / axis.step + 1e-9), last = std::ceil(hi / axis.step - 1e-9);
  for (double i = first; i <= last; ++i)
    axis.ticks.push_back(k >= 0 ? i * m * std::pow(10.0, k) : i * m / std::pow(10.0, -k));
  // The slack above may put a tick a rounding hair inside the data; the
  // interval still covers the data exactly.
  axis.lo = std::min(axis.ticks.front(), lo);
  axis.hi = std::max(axis.ticks.back(), hi);
  check<ValueError>(std::isfinite(axis.lo) && std::isfinite(axis.hi), "nice_axis: the range [", lo, ", ", hi,
                    "] is too wide to plot");
  axis.decimals = tick_decimals(axis.step);
  return axis;
}

namespace detail {

// A linear map from data values to pixels. p1 < p0 is fine (the y axis grows
// upwards on screen, SVG's y grows downwards).
struct Scale {
  double d0, d1;  // data interval, d0 < d1
  double p0, p1;  // the pixels d0 and d1 map to
  double operator()(double v) const { return p0 + (v - d0) / (d1 - d0) * (p1 - p0); }
};

// Text for element content and attribute values: the five XML specials as
// entities, and control characters XML 1.0 forbids (everything below 0x20
// but tab, newline, carriage return) replaced by '?'.
inline std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += '?';
        else
          out += c;
    }
  }
  return out;
}

// A pixel coordinate; always finite here, two decimals are plenty.
inline std::string px(double v) { return format_fixed(v, 2); }

struct Series {
  const char* id;     // class name in the SVG
  const char* label;  // legend text
  const char* color;
  const char* dash;  // stroke-dasharray; "" for solid
  // Through an alias: nvcc's generated host code would otherwise wrap the
  // member pointer in parentheses that GCC warns about.
  using Field = double EpochMetrics::*;
  Field value;

  std::string dash_attribute() const { return *dash ? std::string(" stroke-dasharray=\"") + dash + "\"" : ""; }
};

}  // namespace detail

// The SVG document for `history` (what write_svg writes). Throws ValueError
// for an empty history or options out of range.
inline std::string render_svg(const History& history, const PlotOptions& options = {}) {
  using detail::px;
  check<ValueError>(!history.empty(), "render_svg: the history is empty, there is nothing to plot");
  check<ValueError>(options.width >= 320 && options.width <= 20000,
                    "render_svg: PlotOptions::width must be in [320, 20000] pixels, got ", options.width);
  check<ValueError>(options.height >= 200 && options.height <= 20000,
                    "render_svg: PlotOptions::height must be in [200, 20000] pixels, got ", options.height);

  // The series d2l draws, in its order, then val loss.
  std::vector<detail::Series> series = {{"train-loss", "train loss", "#1f77b4", "", &EpochMetrics::train_loss}};
  if (options.train_acc) series.push_back({"train-acc", "train acc", "#bf00bf", "6,3", &EpochMetrics::train_acc});
  series.push_back({"val-acc", "val acc", "#2ca02c", "6,3,1.5,3", &EpochMetrics::val_acc});
  series.push_back({"val-loss", "val loss", "#d62728", "1.5,3", &EpochMetrics::val_loss});

  const std::vector<EpochMetrics>& epochs = history.epochs();
  // Only series with something to draw take part (in the y range and the
  // legend).
  double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
  std::erase_if(series, [&](const detail::Series& s) {
    bool any = false;
    for (const EpochMetrics& m : epochs) {
      const double v = m.*s.value;
      if (!std::isfinite(v)) continue;
      any = true;
      y_lo = std::min(y_lo, v);
      y_hi = std::max(y_hi, v);
    }
    return !any;
  });
  if (series.empty()) {  // nothing finite: empty axes
    y_lo = 0;
    y_hi = 1;
  }
  const NiceAxis y_axis = nice_axis(y_lo, y_hi, 6);

  // x: exactly the epochs run (as d2l's xlim=[1, num_epochs]), ticks on the
  // integer multiples of a nice step inside it; one epoch gets ±0.5.
  const auto first_epoch = static_cast<double>(epochs.front().epoch);
  const auto last_epoch = static_cast<double>(epochs.back().epoch);
  const double x_lo = epochs.size() > 1 ? first_epoch : first_epoch - 0.5;
  const double x_hi = epochs.size() > 1 ? last_epoch : last_epoch + 0.5;
  const double x_step = nice_step(first_epoch, last_epoch, 11, 1.0);
  std::vector<double> x_ticks;
  for (double t = std::ceil(first_epoch / x_step) * x_step; t <= last_epoch; t += x_step) x_ticks.push_back(t);

  // Layout: tick labels left and below, the legend in a column on the right
  // (outside the plot, so it never hides a curve).
  const double width = options.width, height = options.height;
  const double left = 56, right = width - 128, top = options.title.empty() ? 16 : 40, bottom = height - 48;
  const double inset = 8;  // keeps the first and last markers off the frame
  const detail::Scale sx{x_lo, x_hi, left + inset, right - inset};
  const detail::Scale sy{y_axis.lo, y_axis.hi, bottom, top};

  std::string svg;
  const auto add = [&svg](std::initializer_list<std::string_view> parts) {
    for (std::string_view p : parts) svg += p;
    svg += '\n';
  };
  const std::string w = std::to_string(options.width), h = std::to_string(options.height);
  add({"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"", w, "\" height=\"", h, "\" viewBox=\"0 0 ",
       w, " ", h, "\" font-family=\"sans-serif\" font-size=\"12\">"});
  add({"<rect x=\"0\" y=\"0\" width=\"", w, "\" height=\"", h, "\" fill=\"#ffffff\"/>"});
  if (!options.title.empty())
    add({"<text class=\"title\" x=\"", px((left + right) / 2), "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">",
         detail::xml_escape(options.title), "</text>"});

  // Grid and tick labels.
  add({"<g class=\"grid\" stroke=\"#d9d9d9\" stroke-width=\"1\">"});
  for (double t : y_axis.ticks)
    add({"<line x1=\"", px(left), "\" y1=\"", px(sy(t)), "\" x2=\"", px(right), "\" y2=\"", px(sy(t)), "\"/>"});
  for (double t : x_ticks)
    add({"<line x1=\"", px(sx(t)), "\" y1=\"", px(top), "\" x2=\"", px(sx(t)), "\" y2=\"", px(bottom), "\"/>"});
  add({"</g>"});
  add({"<rect class=\"frame\" x=\"", px(left), "\" y=\"", px(top), "\" width=\"", px(right - left), "\" height=\"",
       px(bottom - top), "\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1\"/>"});
  add({"<g class=\"y-ticks\" text-anchor=\"end\">"});
  for (double t : y_axis.ticks)
    add({"<text x=\"", px(left - 6), "\" y=\"", px(sy(t) + 4), "\">", format_fixed(t, y_axis.decimals), "</text>"});
  add({"</g>"});
  add({"<g class=\"x-ticks\" text-anchor=\"middle\">"});
  for (double t : x_ticks)
    add({"<text x=\"", px(sx(t)), "\" y=\"", px(bottom + 18), "\">", format_fixed(t, 0), "</text>"});
  add({"</g>"});
  add({"<text class=\"x-label\" x=\"", px((left + right) / 2), "\" y=\"", px(bottom + 38),
       "\" text-anchor=\"middle\">epoch</text>"});

  // The curves: a polyline per run of consecutive finite points (a single
  // point has no line, only its marker), then a marker per finite point.
  for (const detail::Series& s : series) {
    const std::string dash = s.dash_attribute();
    add({"<g class=\"series ", s.id, "\">"});
    std::vector<std::string> run;
    const auto flush_run = [&] {
      if (run.size() >= 2) {
        std::string points;
        for (const std::string& p : run) points += (points.empty() ? "" : " ") + p;
        add({"<polyline class=\"", s.id, "\" fill=\"none\" stroke=\"", s.color, "\" stroke-width=\"1.5\"", dash,
             " points=\"", points, "\"/>"});
      }
      run.clear();
    };
    for (const EpochMetrics& m : epochs) {
      const double v = m.*s.value;
      if (std::isfinite(v))
        run.push_back(px(sx(static_cast<double>(m.epoch))) + "," + px(sy(v)));
      else
        flush_run();
    }
    flush_run();
    for (const EpochMetrics& m : epochs) {
      const double v = m.*s.value;
      if (std::isfinite(v))
        add({"<circle cx=\"", px(sx(static_cast<double>(m.epoch))), "\" cy=\"", px(sy(v)), "\" r=\"2.5\" fill=\"",
             s.color, "\"/>"});
    }
    add({"</g>"});
  }

  // The legend: a line sample with its marker, then the label.
  add({"<g class=\"legend\">"});
  for (std::size_t i = 0; i < series.size(); ++i) {
    const detail::Series& s = series[i];
    const double y = top + 10 + 20 * static_cast<double>(i), x = right + 12;
    const std::string dash = s.dash_attribute();
    add({"<line x1=\"", px(x), "\" y1=\"", px(y), "\" x2=\"", px(x + 28), "\" y2=\"", px(y), "\" stroke=\"", s.color,
         "\" stroke-width=\"1.5\"", dash, "/>"});
    add({"<circle cx=\"", px(x + 14), "\" cy=\"", px(y), "\" r=\"2.5\" fill=\"", s.color, "\"/>"});
    add({"<text x=\"", px(x + 34), "\" y=\"", px(y + 4), "\">", s.label, "</text>"});
  }
  add({"</g>"});
  add({"</svg>"});
  return svg;
}

// Writes the picture of `history` to `file` (atomically, like write_csv).
// Throws ValueError for an empty history or bad options, IoError when the
// file cannot be written.
inline void write_svg(const History& history, const std::filesystem::path& file, const PlotOptions& options = {}) {
  check<ValueError>(!history.empty(), "write_svg: the history is empty, there is nothing to plot into '", file.string(),
                    "'");
  const std::string svg = render_svg(history, options);
  io::detail::atomic_write(file, std::as_bytes(std::span(svg.data(), svg.size())));
}

}  // namespace rescnn::train
