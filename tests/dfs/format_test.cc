// What `list`, `status` and the shell's command parsing show and accept.
#include "dfs/format.h"

#include <catch2/catch.hpp>

#include "dfs/shell.h"

namespace lumen::dfs {

TEST_CASE("sizes are shown in binary units", "[dfs][format]") {
  CHECK(FormatBytes(0) == "0 B");
  CHECK(FormatBytes(1023) == "1023 B");
  CHECK(FormatBytes(1024) == "1.0 KiB");
  CHECK(FormatBytes(uint64_t{3} << 19) == "1.5 MiB");
  CHECK(FormatBytes(uint64_t{1} << 30) == "1.0 GiB");
}

TEST_CASE("list shows each artifact and where each chunk's replicas live", "[dfs][format]") {
  ArtifactInfo a;
  a.name = "notes";
  a.version = 2;
  a.size = 1536;
  a.checksum = 0xabcdef;
  a.chunks = {ChunkInfo{ChunkId(1, 0), 1024, 1, {0, 2, 3}}, ChunkInfo{ChunkId(1, 1), 512, 2, {}}};
  CHECK(FormatList({a}) ==
        "notes  version 2  1.5 KiB  checksum 0000000000abcdef\n"
        "  chunk 0  1.0 KiB  storage.0 storage.2 storage.3\n"
        "  chunk 1  512 B  (no live replica)\n");
  CHECK(FormatList({}) == "(no artifacts)\n");
  CHECK(FormatWritten("uploaded", a) ==
        "uploaded notes: version 2, 1.5 KiB in 2 chunks, checksum 0000000000abcdef\n");
  const auto json = ArtifactJson(a);
  CHECK(json["chunks"][0]["replicas"][1] == "storage.2");
  CHECK(json["checksum"] == "0000000000abcdef");
}

TEST_CASE("status shows the name node, the counts and every storage node", "[dfs][format]") {
  StoreStatus status;
  status.name_node_state = "ready";
  status.config.replication = 3;
  status.artifacts = 1;
  status.chunks = 2;
  status.under_replicated = 1;
  status.name_node_pid = 77;
  status.storage = {StorageNodeStatus{0, true, "n1", 1234, 2, 2048},
                    StorageNodeStatus{1, false, "", 0, 1, 5}};
  CHECK(FormatStatus(status) ==
        "name node: ready (pid 77)\n"
        "replication: 3  chunk size: 1.0 MiB  storage nodes: 2 (1 alive)\n"
        "artifacts: 1  chunks: 2  under-replicated: 1  lost: 0  repairs in flight: 0\n"
        "  storage.0   alive  node n1                pid 1234     2 chunks  2.0 KiB\n"
        "  storage.1   dead   node -                 pid -        1 chunk  5 B\n");
  CHECK(StatusJson(status)["storage_nodes"][1]["alive"] == false);
}

TEST_CASE("scripts given with -c split on semicolons outside quotes", "[dfs][shell]") {
  CHECK(SplitCommands("upload a hello; get a;;list") ==
        std::vector<std::string>{"upload a hello", " get a", "list"});
  CHECK(SplitCommands("upload a \"x; y\"; get a") ==
        std::vector<std::string>{"upload a \"x; y\"", " get a"});
}

TEST_CASE("a command's content is the rest of its line, or one quoted word", "[dfs][shell]") {
  auto command = ParseCommand("  upload notes hello   big world ");
  REQUIRE(command.ok());
  CHECK(command->name == "upload");
  CHECK(command->args == std::vector<std::string>{"notes", "hello", "big", "world"});
  CHECK(command->content == "hello   big world");
  command = ParseCommand(R"(update notes "say \"hi\"  twice")");
  REQUIRE(command.ok());
  CHECK(command->content == "say \"hi\"  twice");
  command = ParseCommand("upload empty \"\"");
  REQUIRE(command.ok());
  CHECK(command->args.size() == 2);
  CHECK(command->content.empty());
  CHECK(ParseCommand("   ")->name.empty());
  CHECK(absl::IsInvalidArgument(ParseCommand("get \"open").status()));
}

TEST_CASE("storage nodes are named storage.i, dfs.storage.i or i", "[dfs][shell]") {
  CHECK(ParseNodeName("storage.2", 4).value() == 2);
  CHECK(ParseNodeName("dfs.storage.0", 4).value() == 0);
  CHECK(ParseNodeName("3", 4).value() == 3);
  CHECK(absl::IsInvalidArgument(ParseNodeName("storage.4", 4).status()));
  CHECK(absl::IsInvalidArgument(ParseNodeName("node1", 4).status()));
}

}  // namespace lumen::dfs
