// The writer of the lrc quantized checkpoint (layout and reader: io/lrc_checkpoint.h).
// Written into <dir>.partial and renamed, so an interrupted run never leaves a directory
// that looks valid.
#pragma once

#include <string>

#include "lrc/io/lrc_checkpoint.h"
#include "lrc/model/llama.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc {

struct CheckpointInfo {
  std::string source_model;    // path of the FP model it came from
  std::string tokenizer_file;  // tokenizer to copy beside it ("" = none)
  QuantizeOptions options;
  CalibrationSet const* calib = nullptr;  // for the record (file, hash, size)
  QuantizeReport const* report = nullptr;
};

void save_checkpoint(const LlamaModel& m, const std::string& dir, const CheckpointInfo& info);

}  // namespace lrc
