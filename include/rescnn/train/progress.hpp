// rescnn/train/progress.hpp — a one-line progress bar for a training epoch.
//
//   epoch 2/10 [=========>          ] 234/469  loss 0.5123  351 img/s  ETA 0:42
//
// The line is rewritten in place ('\r', then the new text, padded with spaces
// over whatever the previous one left) and erased by `finish()`, so the
// permanent per-epoch log line printed afterwards starts on a clean line. It
// uses no terminal escape sequences: '\r' and spaces work on every terminal
// and leave readable text in a file.
//
// The trainer enables the bar only when stderr is a terminal (`is_terminal`);
// in a log file a hundred redraws per epoch would be noise, and the plain
// one-line-per-epoch log is what one wants there. A disabled bar does nothing
// at all.
//
// Redraws are throttled by time (at most one per `min_interval`, 100 ms by
// default, on steady_clock), so calling `update` after every batch costs a
// clock read, not a terminal write. The final state (all steps done) is always
// drawn.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <ostream>
#include <string>

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

#include "rescnn/core/error.hpp"
#include "rescnn/train/format.hpp"

namespace rescnn::train {

// Whether `stream` writes to a terminal (so '\r' redraws make sense).
inline bool is_terminal(std::FILE* stream) {
  if (stream == nullptr) return false;
#if defined(_WIN32)
  const int fd = ::_fileno(stream);
  return fd >= 0 && ::_isatty(fd) != 0;
#else
  const int fd = ::fileno(stream);
  return fd >= 0 && ::isatty(fd) != 0;
#endif
}

// What one frame of the bar shows.
struct ProgressState {
  std::int64_t epoch = 1, num_epochs = 1;
  std::int64_t steps_done = 0, total_steps = 1;
  double loss = std::numeric_limits<double>::quiet_NaN();               // running mean loss of the epoch
  double images_per_second = std::numeric_limits<double>::quiet_NaN();  // training throughput so far
  double eta_seconds = std::numeric_limits<double>::quiet_NaN();        // NaN: not known yet
};

// One frame, at most `max_width` characters (79 by default: a full 80-column
// line would make some terminals wrap before the '\r'). The bar is 20
// characters wide and shrinks (down to 10) when the numbers need the room.
// Before the first step, loss and throughput are shown as "-"; after it, a
// NaN loss shows as "nan", which is worth seeing.
inline std::string format_progress_line(const ProgressState& s, std::size_t max_width = 79) {
  const std::string total = std::to_string(s.total_steps);
  std::string done = std::to_string(s.steps_done);
  if (done.size() < total.size()) done.insert(0, total.size() - done.size(), ' ');  // steady columns
  const bool started = s.steps_done > 0;
  const std::string prefix = "epoch " + std::to_string(s.epoch) + "/" + std::to_string(s.num_epochs) + " [";
  const std::string suffix = "] " + done + "/" + total + "  loss " + (started ? format_fixed(s.loss, 4) : "-") + "  " +
                             (started ? format_fixed(s.images_per_second, 0) : "-") + " img/s  ETA " +
                             format_duration(s.eta_seconds);

  constexpr std::size_t kBarWidth = 20, kMinBarWidth = 10;
  const std::size_t text = prefix.size() + suffix.size();
  const std::size_t width = text + kBarWidth <= max_width      ? kBarWidth
                            : text + kMinBarWidth <= max_width ? max_width - text
                                                               : kMinBarWidth;
  const double fraction =
      s.total_steps > 0 ? std::clamp(static_cast<double>(s.steps_done) / static_cast<double>(s.total_steps), 0.0, 1.0)
                        : 0.0;
  const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(width));
  std::string bar(filled, '=');
  if (filled < width) bar += '>';  // the head, until the epoch is complete
  bar.resize(width, ' ');

  std::string line = prefix + bar + suffix;
  if (line.size() > max_width) line.resize(max_width);  // absurd numbers: cut rather than wrap
  return line;
}

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kDefaultInterval{100};

  // Draws on `target` (normally stderr) when `enabled`; otherwise every method
  // does nothing. `min_interval` is the least time between two redraws.
  ProgressBar(std::FILE* target, bool enabled, std::chrono::milliseconds min_interval = kDefaultInterval)
      : file_(target), enabled_(enabled && target != nullptr), interval_(min_interval) {}
  ProgressBar(std::ostream& target, bool enabled, std::chrono::milliseconds min_interval = kDefaultInterval)
      : stream_(&target), enabled_(enabled), interval_(min_interval) {}

  // A bar still on screen (an exception ended the epoch) is erased, so the
  // error message starts on a clean line.
  ~ProgressBar() {
    try {
      if (active_) clear();
    } catch (...) {  // a progress bar must never turn into a second error
    }
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }
  // Frames drawn so far (the erase by finish() is not one).
  std::int64_t redraws() const { return redraws_; }

  // Begins an epoch of `total_steps` batches and draws the empty bar. A bar
  // left from an unfinished epoch is erased first.
  void start(std::int64_t epoch, std::int64_t num_epochs, std::int64_t total_steps) {
    if (!enabled_) return;
    check<ValueError>(epoch >= 1 && num_epochs >= epoch,
                      "ProgressBar::start: need 1 <= epoch <= num_epochs, got epoch ", epoch, " of ", num_epochs);
    check<ValueError>(total_steps >= 1, "ProgressBar::start: total_steps must be >= 1, got ", total_steps);
    if (active_) clear();
    state_ = ProgressState{};
    state_.epoch = epoch;
    state_.num_epochs = num_epochs;
    state_.total_steps = total_steps;
    start_time_ = Clock::now();
    active_ = true;
    draw(start_time_);
  }

  // Reports `steps_done` of the epoch's steps finished, the running loss and
  // the throughput. Redraws when `min_interval` has passed since the last
  // frame, and always for the last step.
  void update(std::int64_t steps_done, double running_loss, double images_per_second) {
    if (!enabled_) return;
    check<ValueError>(active_, "ProgressBar::update: call start() first");
    check<ValueError>(steps_done >= 0 && steps_done <= state_.total_steps,
                      "ProgressBar::update: steps_done must be in [0, ", state_.total_steps, "], got ", steps_done);
    const Clock::time_point now = Clock::now();
    state_.steps_done = steps_done;
    state_.loss = running_loss;
    state_.images_per_second = images_per_second;
    // The ETA assumes the remaining steps take as long as the average so far.
    const double elapsed = std::chrono::duration<double>(now - start_time_).count();
    state_.eta_seconds = steps_done > 0 ? elapsed / static_cast<double>(steps_done) *
                                              static_cast<double>(state_.total_steps - steps_done)
                                        : std::numeric_limits<double>::quiet_NaN();
    pending_ = true;
    if (steps_done == state_.total_steps || now - last_draw_ >= interval_) draw(now);
  }

  // Ends the epoch: draws the last reported state if throttling skipped it,
  // then erases the line and returns the cursor to its start.
  void finish() {
    if (!enabled_ || !active_) return;
    if (pending_) draw(Clock::now());
    clear();
  }

 private:
  void draw(Clock::time_point now) {
    const std::string line = format_progress_line(state_);
    std::string out = "\r" + line;
    if (line.size() < shown_) out.append(shown_ - line.size(), ' ');  // cover the longer previous frame
    write(out);
    shown_ = std::max(shown_, line.size());
    last_draw_ = now;
    pending_ = false;
    ++redraws_;
  }

  void clear() {
    std::string out(shown_ + 2, ' ');
    out.front() = out.back() = '\r';
    write(out);
    shown_ = 0;
    active_ = false;
    pending_ = false;
  }

  // Output errors are ignored: a broken terminal must not stop training.
  void write(const std::string& text) {
    if (file_) {
      std::fwrite(text.data(), 1, text.size(), file_);
      std::fflush(file_);
    } else if (stream_) {
      stream_->write(text.data(), static_cast<std::streamsize>(text.size()));
      stream_->flush();
    }
  }

  std::FILE* file_ = nullptr;
  std::ostream* stream_ = nullptr;
  bool enabled_ = false;
  std::chrono::milliseconds interval_;
  bool active_ = false;   // between start() and finish()
  bool pending_ = false;  // an update not drawn yet
  ProgressState state_;
  Clock::time_point start_time_{}, last_draw_{};
  std::size_t shown_ = 0;  // columns the bar occupies on screen now
  std::int64_t redraws_ = 0;
};

}  // namespace rescnn::train
