// libFuzzer target for zero-shot task files (JSONL, `lrc eval --tasks`). Any input must be
// read or throw lrc::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/eval/tasks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lrc::fuzz::write_parts(data, size, {"tasks.jsonl"});
  try {
    (void)lrc::read_task_file(lrc::fuzz::path("tasks.jsonl"));
  } catch (const lrc::Error&) {
  }
  return 0;
}
