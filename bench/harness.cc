#include "bench/harness.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>

namespace lumen::bench {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Ray rounds numpy float64 values, and numpy rounds by scaling: rint(x * 100) / 100.
double RoundTo2Decimals(double x) { return std::rint(x * 100) / 100; }

// Formats `x` as Python's repr() / numpy's str() does: the shortest digits that read back as `x`,
// positional for 1e-4 <= |x| < 1e16 (always with a fractional part), scientific otherwise.
std::string PythonFloatString(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";

  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  if (ec != std::errc()) return "nan";    // Unreachable: 64 chars hold any double.
  std::string_view text(buf, end - buf);  // e.g. "-9.5223e+02"

  std::string sign;
  if (text.front() == '-') {
    sign = "-";
    text.remove_prefix(1);
  }
  const size_t e = text.find('e');
  std::string digits(text.substr(0, e));
  if (digits.size() > 1) digits.erase(1, 1);  // Drop the '.'.
  int exponent = 0;
  std::from_chars(text.data() + e + 1 + (text[e + 1] == '+'), text.data() + text.size(), exponent);

  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) return sign + "0." + std::string(-exponent - 1, '0') + digits;
    const size_t int_len = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= int_len)
      return sign + digits + std::string(int_len - digits.size(), '0') + ".0";
    return sign + digits.substr(0, int_len) + "." + digits.substr(int_len);
  }
  std::string mantissa = digits.substr(0, 1);
  if (digits.size() > 1) mantissa += "." + digits.substr(1);
  const std::string exp_digits = std::to_string(std::abs(exponent));
  return sign + mantissa + (exponent < 0 ? "e-" : "e+") + (exp_digits.size() < 2 ? "0" : "") +
         exp_digits;
}

}  // namespace

Result TimeIt(const std::string& name, const std::function<void()>& fn, double multiplier,
              const HarnessOptions& options) {
  Result result;
  result.name = name;
  if (options.trials < 1) return result;

  Clock::time_point start = Clock::now();
  long long count = 0;
  while (SecondsSince(start) < options.warmup_seconds) {
    fn();
    ++count;
  }

  const long long step = count / 10 + 1;
  std::vector<double> stats;
  stats.reserve(options.trials);
  for (int trial = 0; trial < options.trials; ++trial) {
    start = Clock::now();
    count = 0;
    while (SecondsSince(start) < options.trial_seconds) {
      for (long long i = 0; i < step; ++i) fn();
      count += step;
    }
    stats.push_back(multiplier * static_cast<double>(count) / SecondsSince(start));
  }

  double sum = 0;
  for (double s : stats) sum += s;
  result.mean = sum / static_cast<double>(stats.size());
  double squares = 0;
  for (double s : stats) squares += (s - result.mean) * (s - result.mean);
  result.stddev = std::sqrt(squares / static_cast<double>(stats.size()));
  return result;
}

std::string FormatRayLine(const Result& r) {
  return r.name + " per second " + PythonFloatString(RoundTo2Decimals(r.mean)) + " +- " +
         PythonFloatString(RoundTo2Decimals(r.stddev));
}

std::string ResultsToJson(const std::vector<Result>& results) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const Result& r : results) {
    array.push_back({{"name", r.name}, {"mean", r.mean}, {"stddev", r.stddev}, {"unit", r.unit}});
  }
  return array.dump(2);
}

}  // namespace lumen::bench
