// Causal GQA attention. Two paths, same math:
//
//   prefill (many queries): per (sequence, block of 128 queries, head) two sgemms,
//       S = (Q_h / sqrt(hd)) · K_gᵀ   over the keys the block can see (causal: later blocks
//                                     see more keys, so ~half the full T x T work is skipped),
//       P = softmax(S) row by row with the causal mask,   O_h = P · V_g.
//   decode (few queries): a plain loop of dot products, softmax and weighted sums.
//
// Measured (docs/results.md, "Foundation"; 22M model, 4 x 512 tokens, 2 cores): prefill at
// 155 GFLOP/s with this sgemm path, 135 with a tiled OpenMP loop over (sequence, head, query
// block), 120 with a plain OpenMP loop over (sequence, head, query). Every element-wise step
// runs on the calling thread on purpose: OpenBLAS (pthread build) runs the sgemms on its own
// threads, and an OpenMP region just before an sgemm leaves libgomp's idle worker spinning for
// milliseconds on the core OpenBLAS needs; with the softmax as an OpenMP loop the prefill fell
// to 55 GFLOP/s.
#include "lrc/kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "lrc/core/fast_exp.h"

namespace lrc {

namespace {

// Row softmax in place over entries lo..n-1 of s; zeroes entries 0..lo-1 (sliding window) and
// n..len-1 (causal mask). lo = 0 without a window: the same operations as ever.
inline void softmax_prefix(float* s, int n, int len, int lo = 0) {
  float mx = s[lo];
#pragma omp simd reduction(max : mx)
  for (int j = lo + 1; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int j = lo; j < n; ++j) {
    s[j] = fast_expf(s[j] - mx);
    sum += s[j];
  }
  const float inv = 1.f / sum;
#pragma omp simd
  for (int j = lo; j < n; ++j) s[j] *= inv;
  std::fill(s, s + lo, 0.f);
  std::fill(s + n, s + len, 0.f);
}

// Query by query: scores against every visible key, softmax, weighted sum of the values.
void attention_loop(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                    int64_t kv_stride, const AttentionShape& a, float* out) {
  const int hd = a.head_dim, q_dim = a.n_heads * hd, kv_dim = a.n_kv_heads * hd;
  const int group = a.n_heads / a.n_kv_heads;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  std::vector<float> sc(pos0 + n_q);
  for (int s = 0; s < n_seq; ++s)
    for (int i = 0; i < n_q; ++i)
      for (int h = 0; h < a.n_heads; ++h) {
        const float* qi = q + (static_cast<int64_t>(s) * n_q + i) * q_dim + h * hd;
        const float* ks = k + s * kv_stride + (h / group) * hd;
        const float* vs = v + s * kv_stride + (h / group) * hd;
        const int n_keys = pos0 + i + 1;
        const int lo = first_visible_key(a, pos0 + i);
        for (int j = lo; j < n_keys; ++j) {
          const float* kj = ks + static_cast<int64_t>(j) * kv_dim;
          float acc = 0.f;
#pragma omp simd reduction(+ : acc)
          for (int d = 0; d < hd; ++d) acc += qi[d] * kj[d];
          sc[j] = acc * scale;
        }
        softmax_prefix(sc.data(), n_keys, n_keys, lo);
        float* o = out + (static_cast<int64_t>(s) * n_q + i) * q_dim + h * hd;
        std::fill(o, o + hd, 0.f);
        for (int j = lo; j < n_keys; ++j) {
          const float* vj = vs + static_cast<int64_t>(j) * kv_dim;
          const float p = sc[j];
#pragma omp simd
          for (int d = 0; d < hd; ++d) o[d] += p * vj[d];
        }
      }
}

void attention_sgemm(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                     int64_t kv_stride, const AttentionShape& a, float* out) {
  const int hd = a.head_dim, q_dim = a.n_heads * hd, kv_dim = a.n_kv_heads * hd;
  const int group = a.n_heads / a.n_kv_heads;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  constexpr int kBlock = 128;
  static thread_local std::vector<float> S_buf;  // [block rows x visible keys], reused
  const size_t need = static_cast<size_t>(kBlock) * (pos0 + n_q);
  if (S_buf.size() < need) S_buf.resize(need);
  float* S = S_buf.data();
  for (int s = 0; s < n_seq; ++s)
    for (int i0 = 0; i0 < n_q; i0 += kBlock) {
      const int nb = std::min(kBlock, n_q - i0);
      const int n_keys = pos0 + i0 + nb;  // keys visible to the last query of the block
      for (int h = 0; h < a.n_heads; ++h) {
        const float* qh = q + (static_cast<int64_t>(s) * n_q + i0) * q_dim + h * hd;
        const float* kh = k + s * kv_stride + (h / group) * hd;
        const float* vh = v + s * kv_stride + (h / group) * hd;
        float* oh = out + (static_cast<int64_t>(s) * n_q + i0) * q_dim + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, n_keys, hd, scale, qh, q_dim, kh,
                    kv_dim, 0.f, S, n_keys);
        for (int r = 0; r < nb; ++r)
          softmax_prefix(S + static_cast<size_t>(r) * n_keys, pos0 + i0 + r + 1, n_keys,
                         first_visible_key(a, pos0 + i0 + r));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, n_keys, 1.f, S, n_keys, vh,
                    kv_dim, 0.f, oh, q_dim);
      }
    }
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, int n_seq, int n_q, int pos0,
                      int64_t kv_seq_stride, const AttentionShape& shape, float* out) {
  // Below ~16 queries a sequence the sgemms are matrix-vector products: the loop wins.
  if (n_q >= 16)
    attention_sgemm(q, k, v, n_seq, n_q, pos0, kv_seq_stride, shape, out);
  else
    attention_loop(q, k, v, n_seq, n_q, pos0, kv_seq_stride, shape, out);
}

}  // namespace lrc
