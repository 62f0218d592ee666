// Writer for the safetensors format (layout in safetensors.h). Tensors are added in memory,
// then write() lays them out contiguously in insertion order (the spec allows no holes;
// the header is space-padded so the data section starts 8-byte aligned) into
// `path.tmp` and renames it to `path`, so a failed write leaves no file behind.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "lrc/io/dtype.h"

namespace lrc {

class SafetensorsWriter {
 public:
  // Float data stored as F32, F16 or BF16 (converted, round-to-nearest-even).
  void add_f32(const std::string& name, std::vector<int64_t> shape, std::span<const float> data,
               DType stored_as = DType::F32);
  // Raw bytes of any dtype (packed codes: U8, I8, I32, ...); size must equal
  // numel(shape) * dtype_size(dtype).
  void add_bytes(const std::string& name, DType dtype, std::vector<int64_t> shape,
                 std::span<const uint8_t> bytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // Throws lrc::Error naming `path` on failure; never leaves `path` or `path.tmp` behind.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// The same file written as a stream, for tensors too large to hold (lrc synth writes a 7B
// model's shards this way): the names, dtypes and shapes are given up front, so the header is
// written first; then append() takes the data section's bytes in order (any chunking), and
// finish() checks that every tensor's bytes came and renames `path.tmp` to `path`. Without
// finish() (an exception on the way) the destructor removes `path.tmp`. The bytes equal
// SafetensorsWriter's for the same tensors and metadata.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t n_bytes() const;  // numel(shape) * dtype_size(dtype); throws on a negative dim
};

class SafetensorsStreamWriter {
 public:
  SafetensorsStreamWriter(std::string path, std::vector<SafetensorsEntry> entries,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // The next bytes of the data section; throws if they run past the last tensor.
  void append(std::span<const uint8_t> bytes);
  // Throws lrc::Error naming path (and the first incomplete tensor) on failure.
  void finish();

 private:
  std::string path_, tmp_;
  std::vector<SafetensorsEntry> entries_;
  uint64_t total_ = 0, written_ = 0;
  std::FILE* f_ = nullptr;
};

}  // namespace lrc
