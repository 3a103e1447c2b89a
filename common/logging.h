// Minimal leveled logging to stderr for Lumen's processes.
//
//   LUMEN_LOG(INFO) << "node " << id << " registered";
//
// Each line carries time, pid, level and source location. The level threshold comes from
// LUMEN_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default INFO). Thread-safe: a line is written
// with one write(2).
#pragma once

#include <sstream>
#include <string_view>

namespace lumen::internal {

enum class LogLevel { DEBUG = 0, INFO = 1, WARNING = 2, ERROR = 3 };

bool LogEnabled(LogLevel level);

// Buffers one line and writes it on destruction.
class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Makes `cond ? (void)0 : LogVoidify() & stream` well-typed, so that LUMEN_LOG is a single
// expression and safe inside an unbraced if.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace lumen::internal

// The stream's operator<< chain must bind to the LogLine, so the list cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define LUMEN_LOG(level)                                                                       \
  !::lumen::internal::LogEnabled(::lumen::internal::LogLevel::level)                           \
      ? (void)0                                                                                \
      : ::lumen::internal::LogVoidify() &                                                      \
            ::lumen::internal::LogLine(::lumen::internal::LogLevel::level, __FILE__, __LINE__) \
                .stream()
// NOLINTEND(bugprone-macro-parentheses)
