// libFuzzer target for the tokenizer files a user may pass with --tokenizer: the first input
// byte chooses tokenizer.json (byte-level BPE, HF) or tokenizer.model (sentencepiece), the rest
// is the file; then a string is encoded and decoded. Any input must load or throw lrc::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_files.h"
#include "lrc/core/error.h"
#include "lrc/io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* name = data[0] & 1 ? "tokenizer.model" : "tokenizer.json";
  lrc::fuzz::write_parts(data + 1, size - 1, {name});
  try {
    const auto tok = lrc::load_tokenizer(lrc::fuzz::path(name));
    for (const int id : tok->encode("Hello, world! 123 <|im_start|> naïve\n")) (void)tok->decode(-1, id);
  } catch (const lrc::Error&) {
  }
  return 0;
}
