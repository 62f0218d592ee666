// Safetensors writer: header JSON + contiguous data, written to a temp name then renamed.
#include "lrc/io/safetensors_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/json_file.h"

namespace lrc {

namespace {
uint64_t numel_of(const std::vector<int64_t>& shape, const std::string& name) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("safetensors writer", "tensor '" + name + "': negative dimension");
    n *= static_cast<uint64_t>(d);
  }
  return n;
}
}  // namespace

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape,
                                std::span<const float> data, DType stored_as) {
  const uint64_t n = numel_of(shape, name);
  if (n != data.size())
    fail("safetensors writer", "tensor '" + name + "': shape has " + std::to_string(n) +
                                   " elements, data has " + std::to_string(data.size()));
  std::vector<uint8_t> bytes(n * dtype_size(stored_as));
  switch (stored_as) {
    case DType::F32:
      std::memcpy(bytes.data(), data.data(), bytes.size());
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = stored_as == DType::F16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
      break;
    default:
      fail("safetensors writer", "tensor '" + name + "': cannot store float data as " +
                                     std::string(dtype_name(stored_as)));
  }
  add_bytes(name, stored_as, std::move(shape), bytes);
}

void SafetensorsWriter::add_bytes(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                  std::span<const uint8_t> bytes) {
  if (name == "__metadata__" || name.empty())
    fail("safetensors writer", "invalid tensor name '" + name + "'");
  for (const auto& e : entries_)
    if (e.name == name) fail("safetensors writer", "tensor '" + name + "' added twice");
  const uint64_t want = numel_of(shape, name) * dtype_size(dtype);
  if (want != bytes.size())
    fail("safetensors writer", "tensor '" + name + "': shape x " + std::string(dtype_name(dtype)) +
                                   " needs " + std::to_string(want) + " bytes, got " +
                                   std::to_string(bytes.size()));
  entries_.push_back({name, dtype, std::move(shape), {bytes.begin(), bytes.end()}});
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));

  std::vector<std::string_view> parts = {std::string_view(reinterpret_cast<const char*>(len), 8),
                                         h};
  for (const auto& e : entries_)
    parts.emplace_back(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size());
  write_file_atomic(path, parts);
}

}  // namespace lrc
