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
// The 8-byte length and the JSON header of a file holding `entries` back to back.
std::string header_bytes(const std::vector<SafetensorsEntry>& entries,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    const uint64_t n = numel_of(e.shape, e.name) * dtype_size(e.dtype);
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(static_cast<uint64_t>(h.size()) >> (8 * i));
  return out + h;
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
  std::vector<SafetensorsEntry> layout;
  for (const auto& e : entries_) layout.push_back({e.name, e.dtype, e.shape});
  const std::string h = header_bytes(layout, metadata_);
  std::vector<std::string_view> parts = {h};
  for (const auto& e : entries_)
    parts.emplace_back(reinterpret_cast<const char*>(e.bytes.data()), e.bytes.size());
  write_file_atomic(path, parts);
}

uint64_t SafetensorsEntry::n_bytes() const { return numel_of(shape, name) * dtype_size(dtype); }

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path,
                                                 std::vector<SafetensorsEntry> entries,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].name == "__metadata__" || entries_[i].name.empty())
      fail(path_, "invalid tensor name '" + entries_[i].name + "'");
    for (size_t k = 0; k < i; ++k)
      if (entries_[k].name == entries_[i].name)
        fail(path_, "tensor '" + entries_[i].name + "' listed twice");
    total_ += entries_[i].n_bytes();
  }
  const std::string h = header_bytes(entries_, metadata);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(path_, "cannot open '" + tmp_ + "' for writing");
  if (std::fwrite(h.data(), 1, h.size(), f_) != h.size()) {
    std::fclose(f_);
    f_ = nullptr;
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
    fail(path_, "write failed (disk full or not writable?)");
  }
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (!f_) return;  // finished (or failed and cleaned up)
  std::fclose(f_);
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
}

void SafetensorsStreamWriter::append(std::span<const uint8_t> bytes) {
  if (!f_) fail(path_, "append after finish");
  if (bytes.size() > total_ - written_)
    fail(path_, "append: " + std::to_string(bytes.size()) + " bytes past the last tensor (" +
                    std::to_string(total_ - written_) + " left)");
  if (std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size())
    fail(path_, "write failed (disk full or not writable?)");
  written_ += bytes.size();
}

void SafetensorsStreamWriter::finish() {
  if (!f_) fail(path_, "finish called twice");
  if (written_ != total_) {
    uint64_t off = 0;
    std::string missing;
    for (const auto& e : entries_) {
      off += e.n_bytes();
      if (off > written_) {
        missing = e.name;
        break;
      }
    }
    fail(path_, "tensor '" + missing + "' incomplete: " + std::to_string(written_) + " of " +
                    std::to_string(total_) + " data bytes written");
  }
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp_, path_, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp_, ec);
    fail(path_, "write failed (disk full or not writable?)");
  }
}

}  // namespace lrc
