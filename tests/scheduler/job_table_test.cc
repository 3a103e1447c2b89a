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
