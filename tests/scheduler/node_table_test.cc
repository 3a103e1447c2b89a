// The head's table of nodes, kept in a real head store in a temp dir.
#include "scheduler/node_table.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

proto::NodeInfo Info(const std::string& id, const std::string& address) {
  proto::NodeInfo info;
  info.set_node_id(id);
  info.set_address(address);
  info.set_ip("127.0.0.2");
  info.set_data_address("127.0.0.2:7001");
  (*info.mutable_total())["CPU"] = 4;
  info.set_is_head(id == "head");
  info.set_alive(true);
  info.add_processes()->set_pid(42);  // changes at every heartbeat: not kept
  return info;
}

std::map<std::string, proto::NodeRecord> ById(const std::vector<proto::NodeRecord>& records) {
  std::map<std::string, proto::NodeRecord> out;
  for (const auto& record : records) out[record.node().node_id()] = record;
  return out;
}

TEST_CASE("a restarted head reads its nodes' last known state back from its store",
          "[scheduler][nodes]") {
  testing::TempDir dir("nodes");
  {
    auto store = HeadStore::Open(dir.Sub("head.db"));
    REQUIRE(store.ok());
    NodeTable nodes(store->get());
    REQUIRE(nodes.Load().value().empty());
    REQUIRE(nodes.Alive(Info("head", "127.0.0.1:6000")).ok());
    REQUIRE(nodes.Alive(Info("n2", "127.0.0.2:6000")).ok());
    REQUIRE(nodes.Alive(Info("n3", "127.0.0.3:6000")).ok());
    REQUIRE(nodes.Dead(Info("n3", "127.0.0.3:6000"), "it left the cluster (lumen stop)").ok());
    CHECK(nodes.dead_count() == 1);
    CHECK_FALSE(nodes.Alive(Info("", "127.0.0.4:6000")).ok());
  }
  auto store = HeadStore::Open(dir.Sub("head.db"));
  REQUIRE(store.ok());
  NodeTable nodes(store->get());
  auto loaded = nodes.Load();
  REQUIRE(loaded.ok());
  REQUIRE(loaded->size() == 3);
  auto by_id = ById(*loaded);
  CHECK(by_id["head"].state() == proto::NodeRecord::ALIVE);
  CHECK(by_id["head"].node().is_head());
  CHECK(by_id["n2"].state() == proto::NodeRecord::ALIVE);
  CHECK(by_id["n2"].node().address() == "127.0.0.2:6000");
  CHECK(by_id["n2"].node().data_address() == "127.0.0.2:7001");
  CHECK(by_id["n2"].node().total().at("CPU") == 4);
  CHECK(by_id["n2"].node().processes().empty());
  CHECK_FALSE(by_id["n2"].node().alive());
  CHECK(by_id["n3"].state() == proto::NodeRecord::DEAD);
  CHECK(by_id["n3"].death_reason() == "it left the cluster (lumen stop)");
  CHECK(by_id["n3"].time_ms() > 0);
  CHECK(nodes.dead_count() == 1);
  // Later changes sort after those read back.
  REQUIRE(nodes.Dead(Info("n2", "127.0.0.2:6000"), "no heartbeat").ok());
  auto again = NodeTable(store->get()).Load();
  REQUIRE(again.ok());
  REQUIRE(again->size() == 3);
  CHECK(again->back().node().node_id() == "n2");
  CHECK(again->back().state() == proto::NodeRecord::DEAD);
}

TEST_CASE("the node table keeps only the most recent dead nodes", "[scheduler][nodes]") {
  testing::TempDir dir("nodes");
  {
    auto store = HeadStore::Open(dir.Sub("head.db"));
    REQUIRE(store.ok());
    NodeTable nodes(store->get(), /*max_dead=*/3);
    REQUIRE(nodes.Alive(Info("alive", "127.0.0.1:6000")).ok());
    for (int i = 0; i < 5; ++i) {
      const std::string id = absl::StrCat("dead", i);
      REQUIRE(nodes.Alive(Info(id, "127.0.0.2:6000")).ok());
      REQUIRE(nodes.Dead(Info(id, "127.0.0.2:6000"), "no heartbeat").ok());
    }
    CHECK(nodes.dead_count() == 3);
    // A node dead again moves to the newest end rather than counting twice.
    REQUIRE(nodes.Dead(Info("dead2", "127.0.0.2:6000"), "no heartbeat").ok());
    CHECK(nodes.dead_count() == 3);
  }
  {
    auto store = HeadStore::Open(dir.Sub("head.db"));
    REQUIRE(store.ok());
    auto loaded = NodeTable(store->get(), 3).Load();
    REQUIRE(loaded.ok());
    auto by_id = ById(*loaded);
    CHECK(by_id.size() == 4);
    CHECK(by_id.contains("alive"));
    CHECK(by_id.contains("dead2"));
    CHECK(by_id.contains("dead3"));
    CHECK(by_id.contains("dead4"));
  }
  // A smaller bound on load drops the oldest dead records from the store as well.
  {
    auto store = HeadStore::Open(dir.Sub("head.db"));
    REQUIRE(store.ok());
    NodeTable nodes(store->get(), 1);
    auto loaded = nodes.Load();
    REQUIRE(loaded.ok());
    CHECK(loaded->size() == 2);
    CHECK(nodes.dead_count() == 1);
    CHECK(loaded->back().node().node_id() == "dead2");
  }
  auto store = HeadStore::Open(dir.Sub("head.db"));
  REQUIRE(store.ok());
  auto rows = (*store)->Scan(NodeTable::kTable, "");
  REQUIRE(rows.ok());
  CHECK(rows->size() == 2);
}

}  // namespace
}  // namespace lumen::scheduler
