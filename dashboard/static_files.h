// The dashboard's pages, scripts and styles (dashboard/static/*), embedded into the binary at
// build time by cmake/EmbedFiles.cmake, so that the head serves them without any file path.
#pragma once

#include <string_view>

namespace lumen::dashboard {

struct StaticFile {
  std::string_view name;  // file name, e.g. "app.js"
  std::string_view content_type;
  std::string_view data;
};

// The file of that exact name, or null.
const StaticFile* FindStaticFile(std::string_view name);

}  // namespace lumen::dashboard
