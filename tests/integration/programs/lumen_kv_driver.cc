// A driver for the KV integration tests. Modes (argv[1]), then cluster flags for lumen::Init:
//   put KEY VALUE [NS] | get KEY [NS] | delete KEY [NS] | list PREFIX [NS]
//   put-many N      writes key-<i> = value-<i> for i < N in order, printing "acked <i>" after
//                   each Put returns (so a test can kill the head mid-way)
//   check-many N    prints "present <count>" of the keys put-many writes, and the first
//                   missing or wrong one
//   oversized       prints the errors of a key and a value over the limits
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "lumen/lumen.h"

namespace {

int Usage() {
  std::cerr << "usage: lumen_kv_driver put|get|delete|list|put-many|check-many|oversized ...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]).rfind("--", 0) != 0) args.emplace_back(argv[i]);
  }
  auto arg = [&args](size_t i, const std::string& fallback = "") {
    return i < args.size() ? args[i] : fallback;
  };
  lumen::Init(argc, argv);
  int code = 0;
  try {
    if (mode == "put" && args.size() >= 2) {
      lumen::kv::Put(args[0], args[1], arg(2));
      std::cout << "put " << args[0] << "\n";
    } else if (mode == "get" && !args.empty()) {
      auto value = lumen::kv::Get(args[0], arg(1));
      std::cout << (value.has_value() ? "value " + *value : std::string("missing")) << "\n";
    } else if (mode == "delete" && !args.empty()) {
      std::cout << "deleted " << lumen::kv::Delete(args[0], arg(1)) << "\n";
    } else if (mode == "list" && !args.empty()) {
      const auto keys = lumen::kv::List(args[0], arg(1));
      std::cout << "keys";
      for (const auto& key : keys) std::cout << " " << key;
      std::cout << "\n";
    } else if (mode == "put-many" && !args.empty()) {
      const int n = std::atoi(args[0].c_str());
      for (int i = 0; i < n; ++i) {
        lumen::kv::Put("key-" + std::to_string(i), "value-" + std::to_string(i));
        std::cout << "acked " << i << std::endl;
      }
    } else if (mode == "check-many" && !args.empty()) {
      const int n = std::atoi(args[0].c_str());
      int present = 0;
      std::string first_missing;
      for (int i = 0; i < n; ++i) {
        auto value = lumen::kv::Get("key-" + std::to_string(i));
        if (value.has_value() && *value == "value-" + std::to_string(i)) {
          ++present;
        } else if (first_missing.empty()) {
          first_missing = "key-" + std::to_string(i);
        }
      }
      std::cout << "present " << present << "\n";
      if (!first_missing.empty()) std::cout << "first-missing " << first_missing << "\n";
    } else if (mode == "oversized") {
      try {
        lumen::kv::Put(std::string(lumen::kv::kMaxKeyBytes + 1, 'k'), "v");
      } catch (const lumen::Error& e) {
        std::cout << "key-error " << e.what() << "\n";
      }
      try {
        lumen::kv::Put("k", std::string(lumen::kv::kMaxValueBytes + 1, 'v'));
      } catch (const lumen::Error& e) {
        std::cout << "value-error " << e.what() << "\n";
      }
    } else {
      code = Usage();
    }
  } catch (const lumen::Error& e) {
    std::cout << "error " << e.what() << std::endl;
    code = 1;
  }
  lumen::Shutdown();
  return code;
}
