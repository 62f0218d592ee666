// GGUF parser (format in include/lrc/io/gguf.h). A Cursor reads the header sequentially and
// checks every length against the bytes left, so a truncated or corrupt file gives one
// lrc::Error naming the file and the field being read, never an out-of-bounds read.
#include <cstring>
#include <limits>

#include "lrc/core/error.h"
#include "lrc/io/gguf.h"
#include "lrc/io/mapped_file.h"

namespace lrc::gguf {

namespace {

constexpr int kMaxDims = 4;             // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;     // arrays of arrays deeper than this are refused
constexpr uint32_t kMaxValueType = 12;  // FLOAT64

// Smallest encoded size of one value of type t (bounds the element count of an array
// against the bytes left before anything is allocated).
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::STRING:
      return 8;  // the length
    case ValueType::ARRAY:
      return 12;  // element type + count
    default:
      return 8;  // 64-bit scalars
  }
}

class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n, const std::string& file) : p_(p), n_(n), file_(file) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }

  // Raw little-endian scalar; `field` names what is read, for the error message.
  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& field) {
    const uint64_t len = read<uint64_t>(field + " (string length)");
    if (len > left())
      fail(file_, field + ": string length " + std::to_string(len) +
                      " runs past the end of the file (" + std::to_string(left()) + " bytes left)");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  void need(size_t k, const std::string& field) const {
    if (k > left())
      fail(file_, field + ": truncated (needs " + std::to_string(k) + " bytes at offset " +
                      std::to_string(pos_) + ", file has " + std::to_string(n_) + ")");
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& file_;
};

ValueType read_value_type(Cursor& c, const std::string& field, const std::string& file) {
  const uint32_t t = c.read<uint32_t>(field + " (value type)");
  if (t > kMaxValueType) fail(file, field + ": unknown value type " + std::to_string(t));
  return static_cast<ValueType>(t);
}

Value read_value(Cursor& c, ValueType t, const std::string& field, const std::string& file,
                 int depth) {
  Value v;
  v.type = t;
  switch (t) {
    case ValueType::UINT8:
      v.data = uint64_t{c.read<uint8_t>(field)};
      break;
    case ValueType::UINT16:
      v.data = uint64_t{c.read<uint16_t>(field)};
      break;
    case ValueType::UINT32:
      v.data = uint64_t{c.read<uint32_t>(field)};
      break;
    case ValueType::UINT64:
      v.data = c.read<uint64_t>(field);
      break;
    case ValueType::INT8:
      v.data = int64_t{c.read<int8_t>(field)};
      break;
    case ValueType::INT16:
      v.data = int64_t{c.read<int16_t>(field)};
      break;
    case ValueType::INT32:
      v.data = int64_t{c.read<int32_t>(field)};
      break;
    case ValueType::INT64:
      v.data = c.read<int64_t>(field);
      break;
    case ValueType::FLOAT32:
      v.data = double{c.read<float>(field)};
      break;
    case ValueType::FLOAT64:
      v.data = c.read<double>(field);
      break;
    case ValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) fail(file, field + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.data = b != 0;
      break;
    }
    case ValueType::STRING:
      v.data = c.read_string(field);
      break;
    case ValueType::ARRAY: {
      if (depth >= kMaxArrayNesting)
        fail(file, field + ": arrays nested deeper than " + std::to_string(kMaxArrayNesting));
      v.elem_type = read_value_type(c, field + " (array element type)", file);
      const uint64_t count = c.read<uint64_t>(field + " (array length)");
      if (count > c.left() / min_encoded_size(v.elem_type))
        fail(file,
             field + ": array length " + std::to_string(count) + " runs past the end of the file");
      Value::Array items;
      items.reserve(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i)
        items.push_back(
            read_value(c, v.elem_type, field + "[" + std::to_string(i) + "]", file, depth + 1));
      v.data = std::move(items);
      break;
    }
  }
  return v;
}

// a * b, or false when it overflows int64.
bool mul_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
      return "uint8";
    case ValueType::INT8:
      return "int8";
    case ValueType::UINT16:
      return "uint16";
    case ValueType::INT16:
      return "int16";
    case ValueType::UINT32:
      return "uint32";
    case ValueType::INT32:
      return "int32";
    case ValueType::FLOAT32:
      return "float32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::UINT64:
      return "uint64";
    case ValueType::INT64:
      return "int64";
    case ValueType::FLOAT64:
      return "float64";
  }
  return "unknown";
}

bool Value::is_integer() const {
  return std::holds_alternative<uint64_t>(data) || std::holds_alternative<int64_t>(data);
}

Value Value::string_array(const std::vector<std::string>& items) {
  Array a;
  a.reserve(items.size());
  for (const auto& s : items) a.push_back(str(s));
  return array(ValueType::STRING, std::move(a));
}

Value Value::i32_array(const std::vector<int>& items) {
  Array a;
  a.reserve(items.size());
  for (int x : items) a.push_back(i32(x));
  return array(ValueType::INT32, std::move(a));
}

GgufFile::GgufFile(const std::string& path)
    : path_(path), map_(std::make_unique<MappedFile>(path)) {
  data_ = map_->data();
  size_ = map_->size();
  parse();
}

GgufFile::GgufFile(std::span<const uint8_t> bytes, std::string name)
    : path_(std::move(name)), data_(bytes.data()), size_(bytes.size()) {
  parse();
}

GgufFile::~GgufFile() = default;
GgufFile::GgufFile(GgufFile&&) noexcept = default;

void GgufFile::drop_pages() const {
  if (map_) map_->drop_pages();
}
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;

void GgufFile::parse() {
  Cursor c(data_, size_, path_);
  if (size_ < 4) fail(path_, "header: file of " + std::to_string(size_) + " bytes is not GGUF");
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) fail(path_, "magic: not a GGUF file (does not start with \"GGUF\")");
  version_ = c.read<uint32_t>("header: version");
  if (version_ == 1)
    fail(path_,
         "header: version 1 is not supported (lrc reads GGUF v2 and v3; re-convert the "
         "model with a current llama.cpp)");
  if ((version_ & 0xffffu) == 0 && ((version_ >> 24) == 2 || (version_ >> 24) == 3))
    fail(path_, "header: big-endian GGUF is not supported");
  if (version_ != 2 && version_ != 3)
    fail(path_,
         "header: unsupported version " + std::to_string(version_) + " (lrc reads GGUF v2 and v3)");
  const uint64_t n_tensors = c.read<uint64_t>("header: tensor count");
  const uint64_t n_kv = c.read<uint64_t>("header: metadata kv count");

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string where = "metadata kv " + std::to_string(i);
    std::string key = c.read_string(where + " key");
    const std::string field = "metadata '" + key + "'";
    const ValueType t = read_value_type(c, field, path_);
    Value v = read_value(c, t, field, path_, 0);
    if (kv_index_.count(key)) fail(path_, field + ": duplicate key");
    kv_index_.emplace(key, kv_.size());
    kv_.push_back({std::move(key), std::move(v)});
  }
  if (const Value* a = find("general.alignment")) {
    if (a->type != ValueType::UINT32)
      fail(path_, std::string("metadata 'general.alignment': has type ") +
                      value_type_name(a->type) + ", expected uint32");
    const uint64_t al = std::get<uint64_t>(a->data);
    if (al == 0 || (al & (al - 1)) != 0)
      fail(path_, "metadata 'general.alignment': " + std::to_string(al) + " is not a power of two");
    alignment_ = al;
  }

  // Tensor infos.
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = c.read_string("tensor info " + std::to_string(i) + " name");
    const std::string field = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.read<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail(path_,
           field + ": n_dims " + std::to_string(n_dims) + " not in 1.." + std::to_string(kMaxDims));
    t.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>(field + " ne[" + std::to_string(d) + "]");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          !mul_ok(t.n_elements, static_cast<int64_t>(ne), &t.n_elements))
        fail(path_, field + ": dimension ne[" + std::to_string(d) + "] = " + std::to_string(ne) +
                        " overflows the element count");
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    t.type = c.read<uint32_t>(field + " type");
    const auto traits = ggml_type_traits(t.type);
    if (!traits) fail(path_, field + ": unknown tensor type " + std::to_string(t.type));
    if (t.ne[0] % traits->block_elems != 0)
      fail(path_, field + ": row length ne[0] = " + std::to_string(t.ne[0]) +
                      " is not a multiple of the " + traits->name + " block size " +
                      std::to_string(traits->block_elems));
    int64_t n_bytes = 0;
    if (!mul_ok(t.n_elements / traits->block_elems, static_cast<int64_t>(traits->block_bytes),
                &n_bytes))
      fail(path_, field + ": byte size overflows");
    t.n_bytes = static_cast<uint64_t>(n_bytes);
    t.offset = c.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0)
      fail(path_, field + ": data offset " + std::to_string(t.offset) +
                      " is not a multiple of the alignment " + std::to_string(alignment_));
    if (tensor_index_.count(t.name)) fail(path_, field + ": duplicate tensor name");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment.
  const uint64_t end_of_infos = c.pos();
  data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
  if (data_offset_ < end_of_infos) fail(path_, "header: data offset overflows");
  const uint64_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
  for (const auto& t : tensors_) {
    if (data_offset_ > size_ || t.offset > data_size || t.n_bytes > data_size - t.offset)
      fail(path_, "tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", " +
                      std::to_string(t.offset + t.n_bytes) + ") of the data section runs past " +
                      "the end of the file (data section holds " + std::to_string(data_size) +
                      " bytes)");
  }
}

const Value* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

namespace {
const Value& need(const GgufFile& f, std::string_view key) {
  const Value* v = f.find(key);
  if (!v) fail(f.path(), "metadata '" + std::string(key) + "': missing");
  return *v;
}
[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const Value& v,
                             const char* expected) {
  fail(f.path(), "metadata '" + std::string(key) + "': has type " + value_type_name(v.type) +
                     ", expected " + expected);
}
}  // namespace

uint64_t GgufFile::get_uint(std::string_view key) const {
  const Value& v = need(*this, key);
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.data)) {
    if (*i < 0)
      fail(path_, "metadata '" + std::string(key) + "': negative value " + std::to_string(*i));
    return static_cast<uint64_t>(*i);
  }
  wrong_type(*this, key, v, "an integer");
}

int64_t GgufFile::get_int(std::string_view key) const {
  const Value& v = need(*this, key);
  if (const auto* i = std::get_if<int64_t>(&v.data)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v.data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(path_,
           "metadata '" + std::string(key) + "': value " + std::to_string(*u) + " out of range");
    return static_cast<int64_t>(*u);
  }
  wrong_type(*this, key, v, "an integer");
}

double GgufFile::get_float(std::string_view key) const {
  const Value& v = need(*this, key);
  if (const auto* d = std::get_if<double>(&v.data)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v.data)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v.data)) return static_cast<double>(*u);
  wrong_type(*this, key, v, "a number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const Value& v = need(*this, key);
  if (const auto* b = std::get_if<bool>(&v.data)) return *b;
  wrong_type(*this, key, v, "bool");
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const Value& v = need(*this, key);
  if (const auto* s = std::get_if<std::string>(&v.data)) return *s;
  wrong_type(*this, key, v, "string");
}

const Value::Array& GgufFile::get_array(std::string_view key, ValueType elem) const {
  const Value& v = need(*this, key);
  const auto* a = std::get_if<Value::Array>(&v.data);
  if (!a) wrong_type(*this, key, v, "array");
  if (v.elem_type != elem)
    fail(path_, "metadata '" + std::string(key) + "': array of " + value_type_name(v.elem_type) +
                    ", expected an array of " + value_type_name(elem));
  return *a;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const auto& a = get_array(key, ValueType::STRING);
  std::vector<std::string> out;
  out.reserve(a.size());
  for (const auto& v : a) out.push_back(std::get<std::string>(v.data));
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const Value& v = need(*this, key);
  const auto* a = std::get_if<Value::Array>(&v.data);
  if (!a) wrong_type(*this, key, v, "array");
  std::vector<int64_t> out;
  out.reserve(a->size());
  for (const auto& e : *a) {
    if (const auto* i = std::get_if<int64_t>(&e.data)) {
      out.push_back(*i);
    } else if (const auto* u = std::get_if<uint64_t>(&e.data);
               u && *u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      out.push_back(static_cast<int64_t>(*u));
    } else {
      fail(path_, "metadata '" + std::string(key) + "': array of " + value_type_name(v.elem_type) +
                      ", expected an array of integers");
    }
  }
  return out;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_bytes(const TensorInfo& t) const {
  // Bounds were checked in parse().
  return {data_ + data_offset_ + t.offset, static_cast<size_t>(t.n_bytes)};
}

std::vector<float> GgufFile::tensor_f32(const TensorInfo& t) const {
  require_dequantizable(t.type, path_ + ": tensor '" + t.name + "'");  // before allocating
  std::vector<float> out(static_cast<size_t>(t.n_elements));
  dequantize(t.type, tensor_bytes(t).data(), t.n_elements, out.data(),
             path_ + ": tensor '" + t.name + "'");
  return out;
}

}  // namespace lrc::gguf
