// The calibration set: the first nsamples chunks of seq_len tokens of a text file,
// tokenized exactly as `lrc eval` tokenizes its data (same protocol, same tokenizer).
#include <algorithm>
#include <cstdio>

#include "lrc/core/error.h"
#include "lrc/core/sha256.h"
#include "lrc/io/corpus.h"
#include "lrc/io/tokenizer.h"
#include "lrc/pipeline/quantize_model.h"

namespace lrc {

CalibrationSet load_calibration(const std::string& file, const Tokenizer& tok, int nsamples,
                                int seq_len, int model_context) {
  CalibrationSet c;
  c.source = file;
  c.sha256 = sha256_file_hex(file);
  if (seq_len < 0)
    fail("--seq", "must be >= 0 (0 = the model's context), got " + std::to_string(seq_len));
  if (seq_len == 0) seq_len = std::min(model_context > 0 ? model_context : 2048, 2048);
  const std::vector<int32_t> all = tokenize_corpus(file, tok);
  const int64_t available = static_cast<int64_t>(all.size()) / seq_len;
  if (available < 1)
    fail(file, "calibration file too short: " + std::to_string(all.size()) +
                   " tokens, one sequence needs " + std::to_string(seq_len));
  if (available < nsamples)
    std::fprintf(stderr, "warning: %s holds only %lld sequences of %d tokens; using them all\n",
                 file.c_str(), static_cast<long long>(available), seq_len);
  c.n_seq = static_cast<int>(std::min<int64_t>(available, nsamples));
  c.seq_len = seq_len;
  c.tokens.assign(all.begin(), all.begin() + static_cast<int64_t>(c.n_seq) * seq_len);
  return c;
}

}  // namespace lrc
