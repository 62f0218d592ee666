// libFuzzer target for the safetensors reader: header, offsets, dtypes, and every (small)
// tensor converted to float32. Any input must either be read or throw lrc::Error; a crash,
// sanitizer report, hang or other exception is a bug. Build and run: docs/results.md,
// "Fuzzing"; seeds: tests/fuzz/make_seeds.sh.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lrc::fuzz::write_parts(data, size, {"model.safetensors"});
  try {
    const lrc::SafetensorsFile f(lrc::fuzz::path("model.safetensors"));
    for (const auto& t : f.tensors()) {
      if (t.numel() > (1 << 20)) continue;
      try {
        (void)f.read_f32(t.name);
      } catch (const lrc::Error&) {
      }
    }
  } catch (const lrc::Error&) {
  }
  return 0;
}
