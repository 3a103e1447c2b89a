#include "common/logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace lumen::internal {
namespace {

LogLevel ThresholdFromEnv() {
  const char* env = std::getenv("LUMEN_LOG_LEVEL");
  if (env == nullptr) return LogLevel::INFO;
  std::string_view value(env);
  if (value == "DEBUG") return LogLevel::DEBUG;
  if (value == "WARNING") return LogLevel::WARNING;
  if (value == "ERROR") return LogLevel::ERROR;
  return LogLevel::INFO;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::DEBUG:
      return "D";
    case LogLevel::INFO:
      return "I";
    case LogLevel::WARNING:
      return "W";
    case LogLevel::ERROR:
      return "E";
  }
  return "?";
}

}  // namespace

bool LogEnabled(LogLevel level) {
  static const LogLevel threshold = ThresholdFromEnv();
  return level >= threshold;
}

LogLine::LogLine(LogLevel level, const char* file, int line) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm parts{};
  localtime_r(&tv.tv_sec, &parts);
  char when[32];
  strftime(when, sizeof(when), "%m-%d %H:%M:%S", &parts);
  const char* base = std::strrchr(file, '/');
  char millis[8];
  snprintf(millis, sizeof(millis), ".%03d", static_cast<int>(tv.tv_usec / 1000));
  stream_ << LevelName(level) << when << millis << ' ' << getpid() << ' '
          << (base != nullptr ? base + 1 : file) << ':' << line << "] ";
}

LogLine::~LogLine() {
  stream_ << '\n';
  const std::string text = stream_.str();
  ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
}

}  // namespace lumen::internal
