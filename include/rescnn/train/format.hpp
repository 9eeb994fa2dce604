// rescnn/train/format.hpp — numbers and durations as text, for the trainer's
// reports (the epoch line, the CSV history, the SVG plot, the progress bar).
//
// Everything goes through std::to_chars / std::from_chars, never printf or
// iostreams, so the output does not depend on the C or C++ locale (a German
// locale would otherwise write "0,5123" and break the CSV). Non-finite values
// are spelled the same everywhere: "nan", "inf", "-inf" (to_chars alone may
// write "-nan", which is noise in a log).
#pragma once

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace rescnn::train {

namespace detail {

// "nan", "inf" or "-inf" for a non-finite value; nullopt for a finite one.
inline std::optional<std::string> non_finite_text(double v) {
  if (std::isnan(v)) return std::string("nan");
  if (std::isinf(v)) return std::string(v > 0 ? "inf" : "-inf");
  return std::nullopt;
}

}  // namespace detail

// Fixed notation with `decimals` digits after the point: format_fixed(0.51234,
// 4) == "0.5123", format_fixed(351.25, 0) == "351".
inline std::string format_fixed(double v, int decimals) {
  if (auto s = detail::non_finite_text(v)) return *s;
  if (decimals < 0) decimals = 0;
  if (decimals > 30) decimals = 30;
  // The largest double has 309 integer digits; add sign, point and decimals.
  std::array<char, 320 + 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, decimals);
  if (ec != std::errc{}) return "?";  // cannot happen with this buffer size
  return std::string(buf.data(), end);
}

// The shortest text that reads back as exactly the same double (0.1 + 0.2 ->
// "0.30000000000000004", 1e-300 -> "1e-300"); what the CSV stores.
inline std::string format_roundtrip(double v) {
  if (auto s = detail::non_finite_text(v)) return *s;
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc{}) return "?";  // cannot happen: 24 characters suffice
  return std::string(buf.data(), end);
}

// A duration for humans: "m:ss" below an hour ("0:42", "12:05"), "h:mm:ss"
// from an hour on ("1:02:03"). Rounded to whole seconds. A negative or
// non-finite duration (an ETA that cannot be estimated yet) is "-:--".
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e15) return "-:--";
  const auto total = static_cast<std::int64_t>(std::llround(seconds));
  const std::int64_t h = total / 3600, m = total / 60 % 60, s = total % 60;
  const auto two = [](std::int64_t x) {
    std::string t = x < 10 ? "0" : "";
    t += std::to_string(x);
    return t;
  };
  if (h > 0) return std::to_string(h) + ":" + two(m) + ":" + two(s);
  return std::to_string(m) + ":" + two(s);
}

// Parses all of `text` as a double ("0.5", "1e-300", "nan", "-inf"); nullopt
// when it is not a number or has anything else around it (no leading '+' or
// spaces: the files read with this are the ones written by format_roundtrip).
inline std::optional<double> parse_double(std::string_view text) {
  double v = 0;
  const char* const last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, v);
  if (text.empty() || ec != std::errc{} || end != last) return std::nullopt;
  return v;
}

// Parses all of `text` as a decimal int64; nullopt otherwise (including
// overflow).
inline std::optional<std::int64_t> parse_int64(std::string_view text) {
  std::int64_t v = 0;
  const char* const last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, v);
  if (text.empty() || ec != std::errc{} || end != last) return std::nullopt;
  return v;
}

}  // namespace rescnn::train
