// libFuzzer target for the GGUF parser and everything that reads a GGUF's contents:
// header / metadata / tensor infos, dequantization of every (small) tensor, the Llama model
// loader and the byte-level BPE vocabulary. Any input must either parse or throw lrc::Error;
// a crash, sanitizer report or other exception is a bug.
//
// Build: cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//          -DLRC_FUZZ=ON -DLRC_BUILD_TESTS=OFF -DLRC_BUILD_BENCH=OFF
//        cmake --build build-fuzz --target fuzz_gguf
// Seed corpus: python3 tests/fuzz/make_gguf_seeds.py <dir>; run: build-fuzz/fuzz_gguf <dir>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lrc/core/error.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf.h"
#include "lrc/io/gguf_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lrc::gguf::GgufFile f(std::span<const uint8_t>(data, size), "fuzz.gguf");
    // Dequantize tensors of bounded size (a tensor's bytes are within the input, but a
    // 1-byte-per-value type over a large input would be slow, not wrong).
    for (const auto& t : f.tensors()) {
      if (t.n_elements > (1 << 20)) continue;
      try {
        (void)f.tensor_f32(t);
      } catch (const lrc::Error&) {
      }
    }
    try {
      (void)lrc::load_gguf_model(f);
    } catch (const lrc::Error&) {
    }
    try {
      lrc::BpeTokenizer tok(lrc::load_gguf_bpe_vocab(f), f.path());
      for (int id : tok.encode("Hello, world! 123 <|im_start|> naïve\n")) (void)tok.decode(-1, id);
    } catch (const lrc::Error&) {
    }
  } catch (const lrc::Error&) {
  }
  return 0;
}
