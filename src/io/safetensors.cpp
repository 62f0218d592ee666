// Safetensors reader: parse and validate the JSON header of a memory-mapped file.
#include "lrc/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "lrc/core/error.h"

namespace lrc {

using nlohmann::json;

int64_t SafetensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A JSON array of non-negative integers, or an error naming the tensor and field.
std::vector<uint64_t> read_uints(const json& j, const std::string& where, const std::string& tensor,
                                 const char* field) {
  auto it = j.find(field);
  if (it == j.end()) fail(where, "tensor '" + tensor + "': missing field '" + field + "'");
  if (!it->is_array())
    fail(where, "tensor '" + tensor + "': field '" + field + "' is not an array");
  std::vector<uint64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_unsigned())  // the parser gives non-negative integers this type
      fail(where, "tensor '" + tensor + "': field '" + field +
                      "' must hold non-negative integers, got " + it->dump());
    out.push_back(v.get<uint64_t>());
  }
  return out;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const size_t size = file_.size();
  if (size < 8)
    fail(path, "truncated: file is " + std::to_string(size) +
                   " bytes, too short for the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_.data()[i];  // little-endian
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) +
                   " runs past the end of the file (file is " + std::to_string(size) +
                   " bytes; truncated?)");
  const char* hbegin = reinterpret_cast<const char*>(file_.data() + 8);
  json header;
  try {
    header = json::parse(hbegin, hbegin + header_len);
  } catch (const json::exception& e) {
    fail(path, std::string("bad JSON header: ") + e.what());
  }
  if (!header.is_object()) fail(path, "bad JSON header: not an object");

  const size_t data_start = 8 + header_len;
  const size_t data_size = size - data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "field '__metadata__' is not an object");
      for (const auto& [k, v] : entry.items())
        metadata_[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    if (!entry.is_object()) fail(path, "tensor '" + name + "': entry is not an object");
    SafetensorInfo t;
    t.name = name;
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string())
      fail(path, "tensor '" + name + "': missing string field 'dtype'");
    const auto parsed = parse_dtype(dt->get<std::string>());
    if (!parsed)
      fail(path, "tensor '" + name + "': unknown dtype '" + dt->get<std::string>() + "'");
    t.dtype = *parsed;
    uint64_t numel = 1;
    for (uint64_t d : read_uints(entry, path, name, "shape")) {
      t.shape.push_back(static_cast<int64_t>(d));
      if (d > (uint64_t{1} << 48) || __builtin_mul_overflow(numel, d, &numel))
        fail(path, "tensor '" + name + "': shape " + entry["shape"].dump() + " is too large");
    }
    const auto offs = read_uints(entry, path, name, "data_offsets");
    if (offs.size() != 2 || offs[0] > offs[1])
      fail(path, "tensor '" + name + "': data_offsets " + entry["data_offsets"].dump() +
                     " must be [begin, end] with begin <= end");
    if (offs[1] > data_size)
      fail(path, "tensor '" + name + "': data_offsets [" + std::to_string(offs[0]) + ", " +
                     std::to_string(offs[1]) + "] run past the end of the data section (" +
                     std::to_string(data_size) + " bytes; file truncated?)");
    const uint64_t want = numel * dtype_size(t.dtype);
    if (want / dtype_size(t.dtype) != numel || want != offs[1] - offs[0])
      fail(path, "tensor '" + name + "': shape " + shape_str(t.shape) + " x " +
                     std::string(dtype_name(t.dtype)) + " needs " + std::to_string(want) +
                     " bytes but data_offsets span " + std::to_string(offs[1] - offs[0]));
    t.offset = data_start + offs[0];
    t.nbytes = offs[1] - offs[0];
    tensors_.push_back(std::move(t));
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const SafetensorInfo& a, const SafetensorInfo& b) { return a.offset < b.offset; });
  // Two tensors sharing bytes is a corrupt (or hostile) file, as the safetensors format defines
  // its data as disjoint ranges: writing one tensor would change the other.
  for (size_t i = 1; i < tensors_.size(); ++i) {
    const SafetensorInfo &a = tensors_[i - 1], &b = tensors_[i];
    if (b.offset < a.offset + a.nbytes && b.nbytes > 0 && a.nbytes > 0)
      fail(path, "tensor '" + b.name + "': data_offsets overlap those of tensor '" + a.name + "'");
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const SafetensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(path(), "missing tensor '" + name + "'");
  return tensors_[it->second];
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const SafetensorInfo& t = info(name);
  if (!is_float_dtype(t.dtype))
    fail(path(), "tensor '" + name + "': dtype " + std::string(dtype_name(t.dtype)) +
                     " is not a float type (F32, F16, BF16, F64)");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, file_.data() + t.offset, out.size(), out.data());
  return out;
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const SafetensorInfo& t = info(name);
  return {file_.data() + t.offset, t.nbytes};
}

std::vector<uint8_t> SafetensorsFile::read_bytes(const std::string& name) const {
  auto b = bytes(name);
  return {b.begin(), b.end()};
}

}  // namespace lrc
