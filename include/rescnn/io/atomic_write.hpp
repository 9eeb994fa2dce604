// rescnn/io/atomic_write.hpp — replace a file so that a crash at any moment
// leaves either the old file or the complete new one, never a mixture.
//
// The bytes go to "<file>.tmp-<pid>-<n>" in the same directory (a rename is
// atomic only within one file system), which is flushed and fsynced, then
// renamed over the target, and the directory is fsynced so the rename itself
// survives a power cut. A failure at any step removes the temporary and
// throws IoError naming the file and the step; the target is untouched.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>

#if defined(_WIN32)
#include <io.h>
#include <process.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

#include "rescnn/core/error.hpp"

namespace rescnn::io::detail {

inline std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// Writes `bytes` to `file` atomically (see the top of this header). Throws
// IoError naming `file`; on failure the temporary is removed and an existing
// `file` is left as it was.
inline void atomic_write(const std::filesystem::path& file, std::span<const std::byte> bytes) {
  namespace fs = std::filesystem;
#if defined(_WIN32)
  const long pid = static_cast<long>(::_getpid());
#else
  const long pid = static_cast<long>(::getpid());
#endif
  // Unique per process and per call, so concurrent writers never share one.
  static std::atomic<unsigned> counter{0};
  fs::path tmp = file;
  tmp += ".tmp-" + std::to_string(pid) + "-" + std::to_string(counter++);

  std::FILE* f = nullptr;
  const auto fail = [&](const std::string& step, int err) {
    if (f) std::fclose(f);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw IoError(rescnn::detail::concat("cannot save '", file.string(), "': ", step,
                                         err ? ": " + errno_text(err) : std::string()));
  };

  errno = 0;
  f = std::fopen(tmp.string().c_str(), "wb");
  if (!f) fail("cannot create temporary file '" + tmp.string() + "'", errno);
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
    fail("write to '" + tmp.string() + "' failed", errno);
  if (std::fflush(f) != 0) fail("flush of '" + tmp.string() + "' failed", errno);
#if defined(_WIN32)
  if (::_commit(::_fileno(f)) != 0) fail("sync of '" + tmp.string() + "' failed", errno);
#else
  if (::fsync(::fileno(f)) != 0) fail("fsync of '" + tmp.string() + "' failed", errno);
#endif
  const int close_result = std::fclose(f);
  f = nullptr;
  if (close_result != 0) fail("close of '" + tmp.string() + "' failed", errno);

  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) fail("cannot rename '" + tmp.string() + "' over it: " + ec.message(), 0);

#if !defined(_WIN32)
  // Make the rename itself durable (best effort: not every file system lets
  // a directory be opened and synced).
  fs::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.string().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
#endif
}

}  // namespace rescnn::io::detail
