// libFuzzer target for an HF model directory: config.json + model.safetensors (+ a sharded
// index naming model.safetensors), loaded whole and again a layer at a time. Any input must
// load or throw lrc::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lrc::fuzz::write_parts(data, size, {"config.json", "model.safetensors", "model.safetensors.index.json"});
  for (const bool lazy : {false, true}) {
    try {
      lrc::LlamaModel m = lrc::load_hf_model(lrc::fuzz::fuzz_dir(), lazy);
      if (lazy)
        for (int i = 0; i < m.cfg.n_layers; ++i) m.load_layer(i);
    } catch (const lrc::Error&) {
    }
  }
  return 0;
}
