// GGUF reader (versions 2 and 3, little-endian), the file format of llama.cpp / ggml.
//
// Layout (all integers little-endian):
//   uint32 magic "GGUF" | uint32 version | uint64 tensor_count | uint64 kv_count
//   kv_count x { string key | uint32 value_type | value }
//   tensor_count x { string name | uint32 n_dims | uint64 ne[n_dims] | uint32 ggml_type |
//                    uint64 offset }
//   padding to `general.alignment` (default 32)
//   tensor data: tensor i at data_start + offset_i (a multiple of the alignment)
// where string = uint64 length + bytes (no NUL), and an array value = uint32 element type +
// uint64 count + elements (arrays of strings and of arrays allowed).
//
// ne[0] is the fastest-varying dimension: a row-major [rows x cols] matrix has ne = {cols,
// rows}. TensorInfo::shape() gives the row-major (PyTorch) order.
//
// The file is mmap'd; every read is bounds-checked and any violation throws one lrc::Error
// "<file>: <field>: <what is wrong>".
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "lrc/io/gguf_dequant.h"

namespace lrc {
class MappedFile;
}

namespace lrc::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* value_type_name(ValueType t);  // "uint32", "string", ...

// One metadata value. Integers are widened (unsigned -> uint64_t, signed -> int64_t), floats to
// double; `type` keeps the stored type, `elem_type` the element type of an array.
struct Value {
  using Array = std::vector<Value>;
  ValueType type = ValueType::UINT8;
  ValueType elem_type = ValueType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> data;

  bool is_integer() const;
  bool is_float() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

  static Value u32(uint32_t v) { return {ValueType::UINT32, ValueType::UINT8, uint64_t{v}}; }
  static Value u64(uint64_t v) { return {ValueType::UINT64, ValueType::UINT8, v}; }
  static Value i32(int32_t v) { return {ValueType::INT32, ValueType::UINT8, int64_t{v}}; }
  static Value f32(float v) { return {ValueType::FLOAT32, ValueType::UINT8, double{v}}; }
  static Value boolean(bool v) { return {ValueType::BOOL, ValueType::UINT8, v}; }
  static Value str(std::string v) { return {ValueType::STRING, ValueType::UINT8, std::move(v)}; }
  static Value array(ValueType elem, Array items) {
    return {ValueType::ARRAY, elem, std::move(items)};
  }
  static Value string_array(const std::vector<std::string>& items);
  static Value i32_array(const std::vector<int>& items);
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] = columns (fastest-varying)
  uint32_t type = 0;        // GgmlType id
  uint64_t offset = 0;      // from the start of the data section
  int64_t n_elements = 0;
  uint64_t n_bytes = 0;
  // Row-major (PyTorch / safetensors) order: ne reversed.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  // mmaps and parses `path`.
  explicit GgufFile(const std::string& path);
  // Parses bytes that the caller keeps alive (tests, fuzzing); `name` stands for the file name
  // in error messages.
  GgufFile(std::span<const uint8_t> bytes, std::string name);
  ~GgufFile();
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;  // null if absent
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed access; a missing key or a value of another type throws lrc::Error naming the file
  // and the key. Integers of any width convert when the value fits.
  uint64_t get_uint(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // a float or an integer
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const Value::Array& get_array(std::string_view key, ValueType elem) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // null if absent
  std::span<const uint8_t> tensor_bytes(const TensorInfo& t) const;
  // All values of t as float32 (row-major in shape() order); lrc::Error naming the file, the
  // tensor and its type if the type cannot be dequantized.
  std::vector<float> tensor_f32(const TensorInfo& t) const;
  // Drops the mapped pages read so far from memory (MappedFile::drop_pages); a no-op for a
  // file parsed from caller-owned bytes.
  void drop_pages() const;

 private:
  void parse();
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace lrc::gguf
