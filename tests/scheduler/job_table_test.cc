// The head's job table, kept in a real head store in a temp dir.
#include "scheduler/job_table.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

proto::DriverJobEvent Event(uint64_t job, bool finished) {
  proto::DriverJobEvent event;
  event.set_job_id(job);
  event.set_finished(finished);
  event.set_driver_pid(1234);
  event.set_node_id("n1");
  event.set_time_ms(finished ? 2000 : 1000);
  return event;
}

TEST_CASE("a job ends once, and repeated reports change nothing", "[scheduler][jobs]") {
  JobTable jobs(nullptr);
  REQUIRE(jobs.Apply(Event(7, false)).value() == false);
  REQUIRE(jobs.Apply(Event(7, false)).value() == false);
  CHECK_FALSE(jobs.Finished(7));
  REQUIRE(jobs.Apply(Event(7, true)).value() == true);
  CHECK(jobs.Finished(7));
  // A retried end, and a start that arrives late, are no news.
  CHECK(jobs.Apply(Event(7, true)).value() == false);
  CHECK(jobs.Apply(Event(7, false)).value() == false);
  const auto list = jobs.List();
  REQUIRE(list.size() == 1);
  CHECK(list[0].start_time_ms() == 1000);
  CHECK(list[0].end_time_ms() == 2000);
  CHECK(list[0].driver_pid() == 1234);
  CHECK_FALSE(jobs.Apply(Event(0, true)).ok());
}

TEST_CASE("a start whose hash was pending is completed by the start that brings it, kept",
          "[scheduler][jobs]") {
  testing::TempDir temp("jobs");
  auto store = HeadStore::Open(temp.path() + "/head.db");
  REQUIRE(store.ok());
  JobTable jobs(store->get());
  proto::DriverJobEvent pending = Event(7, false);
  pending.set_executable_hash_pending(true);
  REQUIRE(jobs.Apply(pending).value() == false);
  CHECK(jobs.Get(7)->executable_hash_pending());
  // A retried pending start is no news; the one with the hash fills it in, once.
  REQUIRE(jobs.Apply(pending).value() == false);
  proto::DriverJobEvent hashed = Event(7, false);
  hashed.set_executable_hash("abc");
  hashed.set_time_ms(1500);
  REQUIRE(jobs.Apply(hashed).value() == false);
  CHECK(jobs.Get(7)->executable_hash() == "abc");
  CHECK_FALSE(jobs.Get(7)->executable_hash_pending());
  CHECK(jobs.Get(7)->start_time_ms() == 1000);
  hashed.set_executable_hash("def");
  REQUIRE(jobs.Apply(hashed).value() == false);
  CHECK(jobs.Get(7)->executable_hash() == "abc");
  // A job that ends while its hash is pending waits for it no more.
  proto::DriverJobEvent pending8 = Event(8, false);
  pending8.set_executable_hash_pending(true);
  REQUIRE(jobs.Apply(pending8).value() == false);
  CHECK(jobs.Get(8)->executable_hash_pending());
  proto::DriverJobEvent end8 = Event(8, true);
  end8.set_executable_hash_pending(true);
  REQUIRE(jobs.Apply(end8).value() == true);
  CHECK_FALSE(jobs.Get(8)->executable_hash_pending());
  // The filled-in hash is what a restarted head reads back.
  JobTable reread(store->get());
  REQUIRE(reread.Load().ok());
  CHECK(reread.Get(7)->executable_hash() == "abc");
  CHECK_FALSE(reread.Get(7)->executable_hash_pending());
}

TEST_CASE("a restarted head reads the job table back from its store", "[scheduler][jobs]") {
  testing::TempDir temp("jobs");
  const std::string& dir = temp.path();
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    JobTable jobs(store->get());
    REQUIRE(jobs.Apply(Event(1, false)).ok());
    REQUIRE(jobs.Apply(Event(2, false)).ok());
    REQUIRE(jobs.Apply(Event(2, true)).ok());
  }
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    JobTable jobs(store->get());
    REQUIRE(jobs.Load().ok());
    CHECK(jobs.List().size() == 2);
    CHECK_FALSE(jobs.Finished(1));
    CHECK(jobs.Finished(2));
  }
}

}  // namespace
}  // namespace lumen::scheduler
