#include "lrc/io/rope_permute.h"

#include <algorithm>
#include <cstddef>

#include "lrc/core/error.h"

namespace lrc {

namespace {
// For each head and i < hd/2: move rows between HF position (i, i + hd/2) and interleaved
// position (2i, 2i + 1). to_hf selects the direction.
std::vector<float> permute(const std::vector<float>& w, int n_heads, int hd, int d_in, bool to_hf) {
  if (hd % 2 != 0 || w.size() != static_cast<size_t>(n_heads) * hd * d_in)
    fail("rope permute", "weight of " + std::to_string(w.size()) + " elements is not [" +
                             std::to_string(n_heads) + "*" + std::to_string(hd) + " x " +
                             std::to_string(d_in) + "] with even head dim");
  std::vector<float> out(w.size());
  const size_t row = static_cast<size_t>(d_in);
  for (int h = 0; h < n_heads; ++h) {
    const size_t base = static_cast<size_t>(h) * hd;
    for (int i = 0; i < hd / 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        const size_t hf = base + i + j * (hd / 2), il = base + 2 * i + j;
        const size_t src = to_hf ? il : hf, dst = to_hf ? hf : il;
        std::copy_n(w.begin() + src * row, row, out.begin() + dst * row);
      }
    }
  }
  return out;
}
}  // namespace

std::vector<float> interleaved_to_halfsplit_rows(const std::vector<float>& w, int n_heads, int hd,
                                                 int d_in) {
  return permute(w, n_heads, hd, d_in, true);
}

std::vector<float> halfsplit_to_interleaved_rows(const std::vector<float>& w, int n_heads, int hd,
                                                 int d_in) {
  return permute(w, n_heads, hd, d_in, false);
}

}  // namespace lrc
