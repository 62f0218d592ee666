// libFuzzer target for lrc's own checkpoints: lrc_config.json + model.safetensors, loaded and
// validated as `lrc eval` would. Any input must load or throw lrc::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/io/lrc_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lrc::fuzz::write_parts(data, size, {"lrc_config.json", "model.safetensors"});
  try {
    (void)lrc::load_checkpoint(lrc::fuzz::fuzz_dir());
  } catch (const lrc::Error&) {
  }
  return 0;
}
