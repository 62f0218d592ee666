// libFuzzer target for llama2.c files: model.bin (header + weights) and tokenizer.bin, then a
// string encoded and decoded. Any input must load or throw lrc::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/io/model_loader.h"
#include "lrc/io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lrc::fuzz::write_parts(data, size, {"model.bin", "tokenizer.bin"});
  try {
    (void)lrc::load_llama2c_model(lrc::fuzz::path("model.bin"));
  } catch (const lrc::Error&) {
  }
  try {
    const auto tok = lrc::load_llama2c_tokenizer(lrc::fuzz::path("tokenizer.bin"));
    for (const int id : tok->encode("Hello, world! 123 naïve\n")) (void)tok->decode(-1, id);
  } catch (const lrc::Error&) {
  }
  return 0;
}
