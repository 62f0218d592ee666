// JSON files (config.json, index files, lrc_config.json): read with errors naming the file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lrc {

// Throws "<path>: cannot read" / "<path>: bad JSON: ..." on failure.
nlohmann::json read_json_file(const std::string& path);

// Writes text to `path.tmp` and renames it to `path`; on failure removes the temp file and
// throws naming `path`.
void write_file_atomic(const std::string& path, const std::string& text);
// The same for data in several pieces, written in order (e.g. a header and tensor blobs).
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);

}  // namespace lrc
