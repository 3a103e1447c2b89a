// A cluster whose disk is slow to read: a driver's executable (90 MB with debug information)
// that is not in the page cache takes its node manager seconds to read, and the driver's
// registration must not wait for that. Reads are held back with a blkio cgroup (v1), which the
// test process joins before it starts the cluster, so that every process of the cluster is in it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Bin;
using lumen::testing::CommandResult;
using lumen::testing::TestCluster;

namespace {

constexpr char kBlkio[] = "/sys/fs/cgroup/blkio";

bool WriteTo(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// "major:minor" of the whole disk that holds the filesystem of device `dev` (a cgroup throttles
// disks, not their partitions).
std::string DiskOf(dev_t dev) {
  namespace fs = std::filesystem;
  const std::string self = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  std::error_code error;
  const fs::path block = fs::canonical("/sys/dev/block/" + self, error);
  if (error) return self;
  if (!fs::exists(block / "partition")) return self;
  std::ifstream in(block.parent_path() / "dev");
  std::string disk;
  in >> disk;
  return disk.empty() ? self : disk;
}

// While it lives, reads by this process and the processes it starts from then on, from the
// disk that holds `file`, go at most `bytes_per_second`.
class SlowReads {
 public:
  SlowReads(const std::string& file, long bytes_per_second) {
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) {
      why_not_ = "cannot stat " + file;
      return;
    }
    const std::string procs = std::string(kBlkio) + "/cgroup.procs";
    if (access(procs.c_str(), W_OK) != 0) {
      why_not_ = "no writable blkio cgroup (v1) at " + std::string(kBlkio);
      return;
    }
    dir_ = std::string(kBlkio) + "/lumen-test-" + std::to_string(getpid());
    std::filesystem::create_directory(dir_);
    if (!WriteTo(dir_ + "/blkio.throttle.read_bps_device",
                 DiskOf(st.st_dev) + " " + std::to_string(bytes_per_second)) ||
        !WriteTo(dir_ + "/cgroup.procs", std::to_string(getpid()))) {
      why_not_ = "cannot throttle reads in " + dir_;
    }
  }
  ~SlowReads() {
    if (dir_.empty()) return;
    WriteTo(std::string(kBlkio) + "/cgroup.procs", std::to_string(getpid()));
    // The cluster's processes have exited, or are exiting.
    for (int i = 0; i < 50 && rmdir(dir_.c_str()) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  SlowReads(const SlowReads&) = delete;
  SlowReads& operator=(const SlowReads&) = delete;

  // Why reads could not be held back here; "" if they are.
  const std::string& why_not() const { return why_not_; }

 private:
  std::string dir_;
  std::string why_not_;
};

// Drops `file` from the page cache and returns the fraction of its pages still cached after.
double Evict(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  struct stat st {};
  fstat(fd, &st);
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return 1;
  std::vector<unsigned char> resident(pages);
  const bool ok = mincore(map, static_cast<size_t>(st.st_size), resident.data()) == 0;
  munmap(map, static_cast<size_t>(st.st_size));
  if (!ok || pages == 0) return 1;
  size_t cached = 0;
  for (unsigned char bit : resident) cached += bit & 1;
  return static_cast<double>(cached) / static_cast<double>(pages);
}

}  // namespace

TEST_CASE(
    "a driver whose executable is slow to read from disk registers at once and runs its task "
    "and actor",
    "[integration][code]") {
  const std::string driver = Bin("lumen_code_driver");
  // 2 MB/s: reading all of the driver's binary takes far longer than the driver's registration
  // deadline (10 s), while the pages it runs from come in a second or two.
  SlowReads slow(driver, 2 << 20);
  if (!slow.why_not().empty()) {
    WARN("reads cannot be slowed here, so this test checks nothing: " << slow.why_not());
    return;
  }
  REQUIRE(std::filesystem::file_size(driver) > (40u << 20));
  TestCluster cluster(2, 256ll << 20, {"--resources={\"far\": 1}"});
  REQUIRE(cluster.start_result().exit_code == 0);
  REQUIRE(Evict(driver) < 0.1);
  const CommandResult run = cluster.RunProgram({"lumen_code_driver"}, 90);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Contains("task "));
  CHECK_THAT(run.output, Contains("actor "));
}
