// The Llama forward pass, readable top to bottom in src/model/forward.cpp:
//   h = embed(tokens)
//   for each layer:  h += o_proj(attn(rope(q,k), v))  on rmsnorm(h)
//                    h += down(silu(gate(x)) * up(x))  on rmsnorm(h)
//   logits = lm_head(rmsnorm(h))
// Batched prefill (many sequences at once) for perplexity and calibration, and single-token
// decode with a KV cache for generation; the tensor work runs on the model's Backend. Every
// function here takes and returns host arrays (a device backend's copies stay inside).
#pragma once

#include <cstdint>
#include <vector>

#include "lrc/model/llama.h"

namespace lrc {

// The groups of linears that share one input (QuaRot/GPTQ order within a layer).
enum class LinearGroup { QKV = 0, O = 1, GateUp = 2, Down = 3 };
const char* linear_group_name(LinearGroup g);

// Called with the input X of each linear group, exactly as the group's linears will see it
// (after the norm / online rotation, before Q_a): x is [n_tokens x d] row-major, host memory
// (downloaded first when the backend keeps activations on a device), or the backend's own
// memory when the hook says it takes that (the GPU calibration pipeline: X never leaves the
// device; the backend's work is finished before on_input is called).
class LinearInputHook {
 public:
  virtual ~LinearInputHook() = default;
  virtual void on_input(int layer, LinearGroup group, const float* x, int64_t n_tokens, int d) = 0;
  virtual bool takes_backend_memory() const { return false; }
};

// ---- MoE feed-forward (mixtral; LlamaConfig::moe()). The block, as HF's MixtralSparseMoeBlock:
//   x = rmsnorm(h) ⊙ ffn_norm                                   -> hook(GateUp), every token
//   p = softmax(x Wrᵀ) over the n experts (router Wr, FP);  the top n_experts_used of p,
//       renormalised to sum 1, are the token's experts and their weights
//   for each expert e (in order), on the rows X_e of its tokens:
//       g = H_down · silu(X_e W1ᵀ) ⊙ (X_e W3ᵀ);   y[rows] += w · g W2ᵀ
//   h += y
// The hook sees every token's x (GateUp) and no Down group: an expert's inputs are its own
// tokens' rows, which the quantization pipeline gathers itself (moe_route, expert_down_input).

// Which tokens each expert gets: rows[e] (ascending token rows) with their routing weights.
struct MoeRouting {
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<float>> weights;
};
// The routing of n tokens from their router logits [n x n_experts] (host): softmax over all
// experts (float64), the top n_experts_used (ties: the lower index), renormalised.
MoeRouting route_tokens(const LlamaConfig& c, const float* logits, int64_t n);
// The routing of layer `layer` for the feed-forward inputs x [n x dim] (backend memory).
MoeRouting moe_route(const LlamaModel& m, int layer, const float* x, int64_t n);
// g [n x hidden] = the input of expert e's down_proj for rows x [n x dim] (backend memory):
// H_down · silu(x W1ᵀ) ⊙ (x W3ᵀ), the expert's linears as they are now (quantized or not).
void expert_down_input(const LlamaModel& m, int layer, int e, const float* x, int64_t n, float* g);

// h[n x dim] = embedding rows of tokens[n].
void embed_tokens(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h);

// One transformer layer in place on h[(n_seq*seq_len) x dim]: n_seq independent sequences,
// positions 0..seq_len-1 each, causal attention.
void layer_forward(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                   LinearInputHook* hook = nullptr);

// The two halves of layer_forward, for callers that keep h between them (the calibration
// pipeline): attention_block does h += o_proj(attn(...)), ffn_block h += down(...). Running
// one after the other equals layer_forward.
void attention_block(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                     LinearInputHook* hook = nullptr);
void ffn_block(const LlamaModel& m, int layer, float* h, int64_t n_tokens,
               LinearInputHook* hook = nullptr);

// The same three on h (and tokens' embeddings) in the model's backend memory (Buffer<float>
// of m.run_backend()): nothing is staged, so a GPU pipeline keeps its hidden states on the
// device. On a CPU backend they equal the functions above (backend memory is host memory).
// tokens stays host memory.
void embed_tokens_resident(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h);
void attention_block_resident(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                              LinearInputHook* hook = nullptr);
void ffn_block_resident(const LlamaModel& m, int layer, float* h, int64_t n_tokens,
                        LinearInputHook* hook = nullptr);

// logits[n x vocab] = lm_head(rmsnorm(h)).
void output_logits(const LlamaModel& m, const float* h, int64_t n, float* logits);

// A context and the continuations (branches) that follow it: rows are the context's tokens,
// then each branch's. Branch b sits at positions context .. context+len-1 and attends the
// context and its own earlier tokens, as if it were fed alone after the context.
struct TokenTree {
  int context = 0;
  std::vector<int> branches;  // tokens per branch
};

// Final hidden states (before the final norm; output_logits on the rows that are needed)
// [n x dim] of several token trees in one pass: one GEMM per linear over the rows of every
// tree, where scoring each context and branch on its own would stream every weight again for
// a handful of rows. tokens holds the trees one after another, each context then branches;
// equal to forward_logits of each (context + branch) sequence, up to float rounding.
std::vector<float> tree_hidden_states(const LlamaModel& m, const int32_t* tokens,
                                      const std::vector<TokenTree>& trees);

// Full prefill: logits [(n_seq*seq_len) x vocab] for tokens [n_seq x seq_len].
std::vector<float> forward_logits(const LlamaModel& m, const int32_t* tokens, int n_seq,
                                  int seq_len);

// tokens holds n_seq sequences of seq_len tokens each. Returns the sum over sequences s and
// target positions t in [first_target, seq_len) of -log p(tokens[s][t] | tokens[s][0..t-1]);
// the model runs on the first seq_len-1 tokens of each sequence. *count (if not null) gets the
// number of predicted tokens, n_seq * (seq_len - first_target). Memory stays bounded: logits
// are computed a block of rows at a time, log-softmax accumulates in float64.
double sequences_nll(const LlamaModel& m, const int32_t* tokens, int n_seq, int seq_len,
                     int64_t* count, int first_target = 1);

// Incremental decoding with a KV cache. forward() appends tokens at positions pos()..,
// and returns logits of the last one (or of all, see below). truncate(p) drops positions >= p,
// so a shared context is computed once and each continuation scored from it. The cache lives
// in the memory of the model's backend at construction (on the GPU for a CUDA backend); the
// model's backend must not change while the decoder is used.
class Decoder {
 public:
  Decoder(const LlamaModel& m, int max_seq_len);
  // Feeds n tokens; if all_logits != nullptr it receives [n x vocab]. Returns the last row.
  const std::vector<float>& forward(const int32_t* tokens, int n, float* all_logits = nullptr);
  const std::vector<float>& step(int32_t token) { return forward(&token, 1); }
  int pos() const { return pos_; }
  int max_seq_len() const { return max_seq_len_; }
  void truncate(int p);

 private:
  const LlamaModel& m_;
  BackendPtr backend_;  // keeps the backend (and so the cache's memory) alive
  const Backend* be_;
  int max_seq_len_;
  int pos_ = 0;
  Buffer<float> k_cache_, v_cache_;  // [layer][pos][kv_dim], backend memory
  std::vector<float> logits_;
};

}  // namespace lrc
