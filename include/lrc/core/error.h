// lrc::Error — the one exception type for bad input and failed invariants.
// Every message names the file (or object) and the field that is wrong, so a
// user sees one clear line: "error: model.safetensors: tensor 'x': shape ...".
#pragma once

#include <stdexcept>
#include <string>

namespace lrc {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "<where>: <what>" — where is a file path or an object name.
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where + ": " + what);
}

}  // namespace lrc
