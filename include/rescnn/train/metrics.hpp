// rescnn/train/metrics.hpp — what one epoch of training measured, the history
// of a run, the one-line epoch log and the CSV file a run is resumed from.
//
// The CSV file (one header line, one row per epoch):
//   epoch,train_loss,train_acc,val_loss,val_acc,lr,imgs_per_s,seconds
//   1,0.51234567890123,0.8123,0.4012,0.8571,0.1,351.2,171.3
// Values are written with the shortest text that reads back as the same
// double, so a resumed run continues from bit-identical numbers. `write_csv`
// rewrites the whole file atomically after every epoch: a crash leaves either
// the previous file or the new one, never half a row. `read_csv` is strict:
// the file is meant to be machine-written, and a damaged one should be
// noticed, not half-loaded.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rescnn/core/error.hpp"
#include "rescnn/io/atomic_write.hpp"
#include "rescnn/train/format.hpp"

namespace rescnn::train {

// One epoch's measurements. A value that was not measured (no validation
// set, say) is left NaN: the epoch line and the CSV show "nan" and the plot
// skips the point, rather than showing a made-up 0.
struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = std::numeric_limits<double>::quiet_NaN();
  double train_acc = std::numeric_limits<double>::quiet_NaN();
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double val_acc = std::numeric_limits<double>::quiet_NaN();
  double lr = std::numeric_limits<double>::quiet_NaN();                 // at the end of the epoch
  double images_per_second = std::numeric_limits<double>::quiet_NaN();  // training images / training seconds
  double seconds = std::numeric_limits<double>::quiet_NaN();            // whole epoch, evaluation included
};

// The epochs of a run, in order. Epochs are consecutive (a gap or a repeat
// means the caller lost track of where a resumed run stands); the first one
// may be any epoch >= 1.
class History {
 public:
  void add(const EpochMetrics& m) {
    check<ValueError>(m.epoch >= 1, "History::add: epoch must be >= 1 (epochs are 1-based), got ", m.epoch);
    check<ValueError>(epochs_.empty() || m.epoch == epochs_.back().epoch + 1, "History::add: epoch ", m.epoch,
                      " does not follow epoch ", epochs_.empty() ? 0 : epochs_.back().epoch,
                      " (epochs must be consecutive)");
    epochs_.push_back(m);
  }

  const std::vector<EpochMetrics>& epochs() const { return epochs_; }
  bool empty() const { return epochs_.empty(); }
  std::size_t size() const { return epochs_.size(); }

  // The epoch with the highest validation accuracy (the first of equals);
  // 0 when no epoch has one.
  std::int64_t best_epoch() const {
    std::int64_t best = 0;
    double best_acc = -1;
    for (const EpochMetrics& m : epochs_)
      if (std::isfinite(m.val_acc) && m.val_acc > best_acc) {
        best = m.epoch;
        best_acc = m.val_acc;
      }
    return best;
  }

  const EpochMetrics& back() const {
    check<ValueError>(!epochs_.empty(), "History::back: the history is empty");
    return epochs_.back();
  }

 private:
  std::vector<EpochMetrics> epochs_;
};

// The permanent log line of an epoch:
//   epoch=1 train_loss=0.5123 val_loss=0.4012 val_acc=0.8571 imgs_per_s=351.2 seconds=171.3
inline std::string format_epoch_line(const EpochMetrics& m) {
  return "epoch=" + std::to_string(m.epoch) + " train_loss=" + format_fixed(m.train_loss, 4) +
         " val_loss=" + format_fixed(m.val_loss, 4) + " val_acc=" + format_fixed(m.val_acc, 4) +
         " imgs_per_s=" + format_fixed(m.images_per_second, 1) + " seconds=" + format_fixed(m.seconds, 1);
}

// The CSV header, column by column; the order of the row fields.
inline constexpr std::string_view kCsvColumns[] = {"epoch",   "train_loss", "train_acc",  "val_loss",
                                                   "val_acc", "lr",         "imgs_per_s", "seconds"};

namespace detail {

inline std::string csv_header() {
  std::string h;
  for (std::string_view c : kCsvColumns) {
    if (!h.empty()) h += ',';
    h += c;
  }
  return h;
}

// Splits on ',' (the file holds numbers only, so there is no quoting).
inline std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return fields;
    start = comma + 1;
  }
}

[[noreturn]] inline void csv_fail(const std::filesystem::path& file, std::size_t line_no, const std::string& problem) {
  throw IoError(rescnn::detail::concat("training history '", file.string(), "' line ", line_no, ": ", problem));
}

}  // namespace detail

// The CSV text of the whole history: the header plus one row per epoch.
inline std::string to_csv_text(const History& history) {
  std::string text = detail::csv_header() + "\n";
  for (const EpochMetrics& m : history.epochs()) {
    text += std::to_string(m.epoch);
    for (double v : {m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.images_per_second, m.seconds}) {
      text += ',';
      text += format_roundtrip(v);
    }
    text += '\n';
  }
  return text;
}

// Writes the whole history to `file`, atomically. Throws IoError naming the
// file when it cannot be written.
inline void write_csv(const History& history, const std::filesystem::path& file) {
  const std::string text = to_csv_text(history);
  io::detail::atomic_write(file, std::as_bytes(std::span(text.data(), text.size())));
}

// Parses CSV text written by to_csv_text; `source` names it in errors (the
// file, or the checkpoint that stored it). Throws IoError naming the source,
// the line and the problem: a wrong header, a row with the wrong number of
// fields, a field that is not a number, epochs that are not consecutive. A
// header with no rows gives an empty history.
inline History parse_csv_text(std::string_view text, const std::filesystem::path& file) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    std::string line(text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (!line.empty() && line.back() == '\r') line.pop_back();  // written or edited on Windows
    lines.push_back(std::move(line));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  // Blank lines at the very end (an editor's extra newline) are harmless;
  // anywhere else they are damage and reported below.
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  check<IoError>(!lines.empty(), "training history '", file.string(), "' is empty (expected the header '",
                 detail::csv_header(), "')");
  if (lines[0] != detail::csv_header())
    detail::csv_fail(file, 1, "expected the header '" + detail::csv_header() + "' but found '" + lines[0] + "'");

  constexpr std::size_t num_columns = std::size(kCsvColumns);
  History history;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::size_t line_no = i + 1;
    const std::vector<std::string_view> fields = detail::split_fields(lines[i]);
    if (fields.size() != num_columns)
      detail::csv_fail(
          file, line_no,
          "expected " + std::to_string(num_columns) + " fields but found " + std::to_string(fields.size()));

    EpochMetrics m;
    const auto epoch = parse_int64(fields[0]);
    if (!epoch) detail::csv_fail(file, line_no, "column 'epoch': '" + std::string(fields[0]) + "' is not an integer");
    m.epoch = *epoch;
    double* const values[] = {&m.train_loss, &m.train_acc,         &m.val_loss, &m.val_acc,
                              &m.lr,         &m.images_per_second, &m.seconds};
    for (std::size_t c = 1; c < num_columns; ++c) {
      const auto v = parse_double(fields[c]);
      if (!v)
        detail::csv_fail(
            file, line_no,
            "column '" + std::string(kCsvColumns[c]) + "': '" + std::string(fields[c]) + "' is not a number");
      *values[c - 1] = *v;
    }
    if (m.epoch < 1)
      detail::csv_fail(file, line_no, "epoch " + std::to_string(m.epoch) + " is not >= 1 (epochs are 1-based)");
    if (!history.empty() && m.epoch != history.back().epoch + 1)
      detail::csv_fail(file, line_no,
                       "epoch " + std::to_string(m.epoch) + " does not follow epoch " +
                           std::to_string(history.back().epoch) + " (epochs must be consecutive)");
    history.add(m);
  }
  return history;
}

// Reads a file written by write_csv (to resume a run); see parse_csv_text.
inline History read_csv(const std::filesystem::path& file) {
  std::error_code ec;
  check<IoError>(std::filesystem::is_regular_file(file, ec), "cannot read training history '", file.string(),
                 "': ", std::filesystem::exists(file, ec) ? "not a regular file" : "no such file");
  std::ifstream in(file, std::ios::binary);
  check<IoError>(static_cast<bool>(in), "cannot read training history '", file.string(), "': cannot open it");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check<IoError>(!in.bad(), "cannot read training history '", file.string(), "': read error");
  return parse_csv_text(text, file);
}

}  // namespace rescnn::train
