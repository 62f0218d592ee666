// GGUF writer (format in include/lrc/io/gguf.h).
#include "lrc/io/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/json_file.h"
#include "lrc/io/rope_permute.h"

namespace lrc {

namespace {

// Appends little-endian encodings to a byte vector.
struct Encoder {
  std::vector<uint8_t> out;
  template <typename T>
  void put(T v) {
    const size_t n = out.size();
    out.resize(n + sizeof(T));
    std::memcpy(out.data() + n, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void put_value(const gguf::Value& v) {
    using gguf::ValueType;
    switch (v.type) {
      case ValueType::UINT8:
        put(static_cast<uint8_t>(std::get<uint64_t>(v.data)));
        break;
      case ValueType::UINT16:
        put(static_cast<uint16_t>(std::get<uint64_t>(v.data)));
        break;
      case ValueType::UINT32:
        put(static_cast<uint32_t>(std::get<uint64_t>(v.data)));
        break;
      case ValueType::UINT64:
        put(std::get<uint64_t>(v.data));
        break;
      case ValueType::INT8:
        put(static_cast<int8_t>(std::get<int64_t>(v.data)));
        break;
      case ValueType::INT16:
        put(static_cast<int16_t>(std::get<int64_t>(v.data)));
        break;
      case ValueType::INT32:
        put(static_cast<int32_t>(std::get<int64_t>(v.data)));
        break;
      case ValueType::INT64:
        put(std::get<int64_t>(v.data));
        break;
      case ValueType::FLOAT32:
        put(static_cast<float>(std::get<double>(v.data)));
        break;
      case ValueType::FLOAT64:
        put(std::get<double>(v.data));
        break;
      case ValueType::BOOL:
        put(static_cast<uint8_t>(std::get<bool>(v.data) ? 1 : 0));
        break;
      case ValueType::STRING:
        put_string(std::get<std::string>(v.data));
        break;
      case ValueType::ARRAY: {
        const auto& a = std::get<gguf::Value::Array>(v.data);
        put(static_cast<uint32_t>(v.elem_type));
        put<uint64_t>(a.size());
        for (const auto& e : a) {
          if (e.type != v.elem_type)
            fail("gguf writer", std::string("array of ") + gguf::value_type_name(v.elem_type) +
                                    " holds a " + gguf::value_type_name(e.type));
          put_value(e);
        }
        break;
      }
    }
  }
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::set(const std::string& key, gguf::Value v) {
  for (auto& kv : kv_)
    if (kv.key == key) {
      kv.value = std::move(v);
      return;
    }
  kv_.push_back({key, std::move(v)});
}

void GgufWriter::erase(const std::string& key) {
  std::erase_if(kv_, [&](const gguf::KeyValue& kv) { return kv.key == key; });
}

void GgufWriter::erase_tensor(const std::string& name) {
  std::erase_if(tensors_, [&](const Tensor& t) { return t.name == name; });
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail("gguf writer", "alignment " + std::to_string(alignment) + " is not a power of two");
  alignment_ = alignment;
  set("general.alignment", gguf::Value::u32(alignment));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                            std::span<const float> data, gguf::GgmlType type) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != static_cast<int64_t>(data.size()))
    fail("gguf writer",
         "tensor '" + name + "': " + std::to_string(data.size()) + " values for its shape");
  std::vector<uint8_t> bytes;
  switch (type) {
    case gguf::GgmlType::F32:
      bytes.resize(data.size() * 4);
      std::memcpy(bytes.data(), data.data(), bytes.size());
      break;
    case gguf::GgmlType::F16:
    case gguf::GgmlType::BF16:
      bytes.resize(data.size() * 2);
      for (size_t i = 0; i < data.size(); ++i) {
        const uint16_t h = type == gguf::GgmlType::F16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
      break;
    default:
      fail("gguf writer", "tensor '" + name + "': cannot encode floats as " +
                              gguf::ggml_type_name(static_cast<uint32_t>(type)));
  }
  add_raw_tensor(name, shape, static_cast<uint32_t>(type), std::move(bytes));
}

void GgufWriter::add_raw_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                uint32_t type, std::vector<uint8_t> bytes) {
  const auto traits = gguf::ggml_type_traits(type);
  if (!traits) fail("gguf writer", "tensor '" + name + "': unknown type " + std::to_string(type));
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (shape.empty() || shape.back() % traits->block_elems != 0 ||
      static_cast<uint64_t>(n / traits->block_elems * traits->block_bytes) != bytes.size())
    fail("gguf writer", "tensor '" + name + "': " + std::to_string(bytes.size()) +
                            " bytes do not fit its shape as " + traits->name);
  tensors_.push_back({name, {shape.rbegin(), shape.rend()}, type, std::move(bytes)});
}

void GgufWriter::serialize(const std::function<void(const void*, size_t)>& sink) const {
  Encoder e;
  e.put(gguf::kMagic);
  e.put<uint32_t>(3);
  e.put<uint64_t>(tensors_.size());
  e.put<uint64_t>(kv_.size());
  for (const auto& kv : kv_) {
    e.put_string(kv.key);
    e.put(static_cast<uint32_t>(kv.value.type));
    e.put_value(kv.value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    e.put_string(t.name);
    e.put(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) e.put(static_cast<uint64_t>(d));
    e.put(t.type);
    e.put(offset);
    offset = align_up(offset + t.bytes.size(), alignment_);
  }
  e.out.resize(align_up(e.out.size(), alignment_), 0);
  sink(e.out.data(), e.out.size());
  static const std::vector<uint8_t> zeros(1 << 12, 0);
  for (const auto& t : tensors_) {
    sink(t.bytes.data(), t.bytes.size());
    const size_t pad = align_up(t.bytes.size(), alignment_) - t.bytes.size();
    for (size_t done = 0; done < pad; done += zeros.size())
      sink(zeros.data(), std::min(zeros.size(), pad - done));
  }
}

std::vector<uint8_t> GgufWriter::bytes() const {
  std::vector<uint8_t> out;
  serialize([&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<uint8_t> data = bytes();
  write_file_atomic(path,
                    {std::string_view(reinterpret_cast<const char*>(data.data()), data.size())});
}

void save_gguf_model(const LlamaModel& m, const BpeVocab* vocab, const std::string& path,
                     gguf::GgmlType type) {
  gguf_model_writer(m, vocab, type).write(path);
}

GgufWriter gguf_model_writer(const LlamaModel& m, const BpeVocab* vocab, gguf::GgmlType type) {
  using gguf::Value;
  const LlamaConfig& c = m.cfg;
  validate_model(m, "save_gguf_model");
  // llama.cpp's architectures: llama, qwen2, qwen3, phi3 (what the GGUF loader reads back); a
  // feature GGUF would drop is refused rather than lost.
  if (c.arch != "llama" && c.arch != "qwen2" && c.arch != "qwen3" && c.arch != "mixtral" &&
      c.arch != "phi3")
    fail("save_gguf_model", "architecture '" + c.arch + "' is not written as GGUF");
  const bool phi3 = c.arch == "phi3";  // fused tensors, LongRoPE factors, sliding_window key
  if (!phi3 && (c.sliding_window > 0 || c.rope_scaling.kind == RopeScaling::Kind::LongRope))
    fail("save_gguf_model", "a sliding window or longrope scaling of '" + c.arch +
                                "' has no GGUF form here (phi3's has)");
  if (phi3 && c.rope_scaling.enabled() && c.rope_scaling.kind != RopeScaling::Kind::LongRope)
    fail("save_gguf_model", std::string("phi3 with ") + rope_scaling_name(c.rope_scaling.kind) +
                                " RoPE scaling has no GGUF form (llama.cpp's phi3 reads LongRoPE)");
  // Mixtral is llama with experts in llama.cpp (expert_count, stacked ffn_*_exps).
  const std::string arch = c.arch == "mixtral" ? "llama" : c.arch;
  const bool llama_rope = arch == "llama";
  const auto key = [&](const char* k) { return arch + "." + k; };
  GgufWriter w;
  w.set("general.architecture", Value::str(arch));
  if (c.moe()) {
    w.set(key("expert_count"), Value::u32(static_cast<uint32_t>(c.n_experts)));
    w.set(key("expert_used_count"), Value::u32(static_cast<uint32_t>(c.n_experts_used)));
  }
  w.set("general.name", Value::str("lrc"));
  w.set(key("context_length"), Value::u32(static_cast<uint32_t>(c.max_seq_len)));
  w.set(key("embedding_length"), Value::u32(static_cast<uint32_t>(c.dim)));
  w.set(key("feed_forward_length"), Value::u32(static_cast<uint32_t>(c.hidden_dim)));
  w.set(key("block_count"), Value::u32(static_cast<uint32_t>(c.n_layers)));
  w.set(key("attention.head_count"), Value::u32(static_cast<uint32_t>(c.n_heads)));
  w.set(key("attention.head_count_kv"), Value::u32(static_cast<uint32_t>(c.n_kv_heads)));
  w.set(key("rope.freq_base"), Value::f32(c.rope_theta));
  w.set(key("attention.layer_norm_rms_epsilon"), Value::f32(c.norm_eps));
  if (!phi3) w.set(key("vocab_size"), Value::u32(static_cast<uint32_t>(c.vocab_size)));
  w.set(key("rope.dimension_count"), Value::u32(static_cast<uint32_t>(c.head_dim())));
  if (c.head_dim_explicit > 0) {
    w.set(key("attention.key_length"), Value::u32(static_cast<uint32_t>(c.head_dim())));
    w.set(key("attention.value_length"), Value::u32(static_cast<uint32_t>(c.head_dim())));
  }
  const bool longrope = c.rope_scaling.kind == RopeScaling::Kind::LongRope;
  if (phi3) {  // as convert_hf_to_gguf.py's Phi3MiniModel (attn_factor only with the factors)
    w.set(key("rope.scaling.original_context_length"),
          Value::u32(static_cast<uint32_t>(longrope ? c.rope_scaling.original : c.max_seq_len)));
    w.set(key("attention.sliding_window"), Value::u32(static_cast<uint32_t>(c.sliding_window)));
    if (longrope)
      w.set(key("rope.scaling.attn_factor"), Value::f32(c.rope_scaling.attention_factor));
  }
  w.set("general.file_type", Value::u32(type == gguf::GgmlType::F32   ? 0
                                        : type == gguf::GgmlType::F16 ? 1
                                                                      : 32));
  if (vocab) {
    std::vector<std::string> merges;
    merges.reserve(vocab->merges.size());
    for (const auto& [a, b] : vocab->merges) merges.push_back(a + " " + b);
    std::vector<int> types = vocab->token_types;
    if (types.empty()) types.assign(vocab->tokens.size(), static_cast<int>(BpeTokenType::Normal));
    w.set("tokenizer.ggml.model", Value::str("gpt2"));
    w.set("tokenizer.ggml.pre", Value::str(vocab->pre));
    w.set("tokenizer.ggml.tokens", Value::string_array(vocab->tokens));
    w.set("tokenizer.ggml.token_type", Value::i32_array(types));
    w.set("tokenizer.ggml.merges", Value::string_array(merges));
    if (vocab->bos_id >= 0)
      w.set("tokenizer.ggml.bos_token_id", Value::u32(static_cast<uint32_t>(vocab->bos_id)));
    if (vocab->eos_id >= 0)
      w.set("tokenizer.ggml.eos_token_id", Value::u32(static_cast<uint32_t>(vocab->eos_id)));
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(vocab->add_bos));
  }
  const int hd = c.head_dim();
  std::map<std::string, std::vector<float>> stacks;  // mixtral: experts 0..e of each kind so far
  for (const HfTensorView& t : hf_tensor_views(m)) {
    std::vector<float> data = *t.data;
    // q/k rows in llama.cpp's order (interleaved RoPE pairs), as its converter permutes them.
    const bool is_q = t.name.find("self_attn.q_proj") != std::string::npos;
    const bool is_k = t.name.find("self_attn.k_proj") != std::string::npos;
    if ((is_q || is_k) && t.shape.size() == 2 && llama_rope && c.rope == RopeStyle::HalfSplit)
      data = halfsplit_to_interleaved_rows(data, is_q ? c.n_heads : c.n_kv_heads, hd, c.dim);
    const std::string name = gguf_tensor_name(t.name);
    if (const int e = gguf_expert_of(t.name); e >= 0) {  // stacked once the last expert is in
      std::vector<float>& st = stacks[name];
      st.insert(st.end(), data.begin(), data.end());
      if (e == c.n_experts - 1) {
        w.add_tensor(name, {c.n_experts, t.shape[0], t.shape[1]}, st, type);
        stacks.erase(name);
      }
      continue;
    }
    w.add_tensor(name, t.shape, data, t.shape.size() == 1 ? gguf::GgmlType::F32 : type);
  }
  if (longrope) {  // phi3: the two factor sets as they are (the loader's read_longrope)
    w.add_tensor("rope_factors_long.weight",
                 {static_cast<int64_t>(c.rope_scaling.long_factor.size())},
                 c.rope_scaling.long_factor, gguf::GgmlType::F32);
    w.add_tensor("rope_factors_short.weight",
                 {static_cast<int64_t>(c.rope_scaling.short_factor.size())},
                 c.rope_scaling.short_factor, gguf::GgmlType::F32);
  } else if (c.rope_scaling.enabled()) {  // llama3 / frequency factors: llama.cpp's rope_freqs
    const std::vector<double> plain = rope_frequencies(hd, c.rope_theta, RopeScaling{}, 1);
    const std::vector<double> scaled = rope_frequencies(hd, c.rope_theta, c.rope_scaling, 1);
    std::vector<float> factors(plain.size());
    for (size_t i = 0; i < plain.size(); ++i) factors[i] = static_cast<float>(plain[i] / scaled[i]);
    w.add_tensor("rope_freqs.weight", {static_cast<int64_t>(factors.size())}, factors,
                 gguf::GgmlType::F32);
  }
  return w;
}

}  // namespace lrc
