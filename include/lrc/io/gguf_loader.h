// A Llama model and its tokenizer (byte-level BPE or SentencePiece) from one GGUF file
// (llama.cpp's format).
//
// Hyper-parameters come from the `llama.*` keys, tensors from their GGUF names:
//
//   token_embd.weight                 model.embed_tokens.weight
//   blk.N.attn_norm.weight            model.layers.N.input_layernorm.weight
//   blk.N.attn_{q,k,v,output}.weight  model.layers.N.self_attn.{q,k,v,o}_proj.weight
//   blk.N.ffn_norm.weight             model.layers.N.post_attention_layernorm.weight
//   blk.N.ffn_{gate,up,down}.weight   model.layers.N.mlp.{gate,up,down}_proj.weight
//   output_norm.weight                model.norm.weight
//   output.weight                     lm_head.weight (absent: tied to the embedding)
//
// phi3 (Phi-3 / Phi-4, `phi3.*` keys) keeps HF's fused linears fused (LlamaConfig::fused_proj):
//   blk.N.attn_qkv.weight             model.layers.N.self_attn.qkv_proj.weight (q, k, v rows)
//   blk.N.ffn_up.weight               model.layers.N.mlp.gate_up_proj.weight (gate rows first)
//   rope_factors_{short,long}.weight  LongRoPE factors (with phi3.rope.scaling.attn_factor and
//                                     .original_context_length; RopeScaling::LongRope)
//   phi3.attention.sliding_window     LlamaConfig::sliding_window (0: none)
//
// Every tensor is dequantized to float32. llama.cpp's converter permutes the rows of q and k
// for its interleaved RoPE (llama, mixtral); the loader undoes that, so the model is the HF one
// exactly (RopeStyle::HalfSplit) and its logits equal those of the HF checkpoint. qwen2, qwen3
// and phi3 run NEOX RoPE in llama.cpp (HF's half split) and are stored unpermuted.
// LlamaModel::source_dtypes maps each HF name to its GGUF type ("Q4_1", "Q8_0", "F32").
#pragma once

#include <memory>
#include <string>

#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf.h"
#include "lrc/io/tokenizer.h"
#include "lrc/model/llama.h"

namespace lrc {

// Whether the file starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// lazy_layers: only the embeddings, final norm and LM head are read; each layer is read (and
// dequantized) from the mapped file when the streaming pipeline loads it (LlamaModel::layer_source).
LlamaModel load_gguf_model(const std::string& file, bool lazy_layers = false);
LlamaModel load_gguf_model(const gguf::GgufFile& f);

// The vocabulary in tokenizer.ggml.* (model "gpt2" = byte-level BPE; tokens, token_type,
// merges, pre, bos/eos_token_id, add_bos_token).
BpeVocab load_gguf_bpe_vocab(const gguf::GgufFile& f);
std::unique_ptr<BpeTokenizer> load_gguf_tokenizer(const std::string& file);
// A SentencePiece vocabulary (tokenizer.ggml.model "llama": tokens, scores, token_type,
// bos/eos/unknown_token_id, add_bos_token, add_space_prefix) tokenized as llama.cpp's SPM
// tokenizer does (src/io/gguf_spm_tokenizer.cpp).
std::unique_ptr<Tokenizer> load_gguf_spm_tokenizer(const gguf::GgufFile& f);
// The file's own vocabulary, by tokenizer.ggml.model: "llama" -> sentencepiece, else BPE.
std::unique_ptr<Tokenizer> load_gguf_vocab_tokenizer(const std::string& file);

// GGUF name of an HF Llama tensor name ("model.layers.3.mlp.up_proj.weight" ->
// "blk.3.ffn_up.weight"); "" if it has none.
// Mixtral's experts (HF "...block_sparse_moe.experts.<e>.w1|w3|w2.weight") map to llama.cpp's
// stacked tensors "blk.<i>.ffn_gate_exps|ffn_up_exps|ffn_down_exps.weight" [n_expert, rows,
// cols], the router to "blk.<i>.ffn_gate_inp.weight".
std::string gguf_tensor_name(const std::string& hf_name);
// e for an expert's HF tensor name (its slice of the stacked tensor), else -1.
int gguf_expert_of(const std::string& hf_name);

}  // namespace lrc
