// A fresh folder under the system's temporary directory for one test, removed with everything
// in it when the test is done:
//
//   testing::TempDir dir("chunk_store");
//   auto store = ChunkStore::Open(dir.Sub("node0"), 0);
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <system_error>

namespace lumen::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_((std::filesystem::temp_directory_path() / ("lumen_" + name + "_test_XXXXXX"))
                  .string()) {
    REQUIRE(mkdtemp(path_.data()) != nullptr);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // `name` inside the folder.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace lumen::testing
