// A deterministic, evenly spread subset of a token stream: token t (counted over every add
// call) is kept when t % stride == 0, until `max_tokens` are kept. LrcClipSearch keeps its
// tokens in one; the quantize pipeline passes stride 1 and no cap there, because it already
// hands the clip searches a subset of whole calibration sequences (--clip-search-tokens), and
// ActClipSearch keeps every token it is given.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lrc {

class TokenSubsample {
 public:
  // stride >= 1; max_tokens <= 0 keeps every selected token.
  TokenSubsample(int d, int64_t stride, int64_t max_tokens)
      : d_(d), stride_(std::max<int64_t>(1, stride)), max_(max_tokens) {}

  // Stride that spreads `keep` tokens over `total` (1 when keep covers everything).
  static int64_t stride_for(int64_t total, int64_t keep) {
    return keep <= 0 || total <= keep ? 1 : (total + keep - 1) / keep;
  }

  void add(const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i, ++seen_) {
      if (seen_ % stride_ != 0 || (max_ > 0 && kept() >= max_)) continue;
      rows_.insert(rows_.end(), x + i * d_, x + (i + 1) * d_);
    }
  }

  int64_t kept() const { return static_cast<int64_t>(rows_.size()) / d_; }
  int64_t seen() const { return seen_; }
  const float* data() const { return rows_.data(); }

 private:
  int d_;
  int64_t stride_, max_;
  int64_t seen_ = 0;
  std::vector<float> rows_;
};

}  // namespace lrc
