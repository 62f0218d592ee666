// Reader for the safetensors format (https://huggingface.co/docs/safetensors):
//
//   [u64 little-endian N][N bytes of JSON header][data section]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, the
// offsets counting from the start of the data section; an optional "__metadata__" entry
// holds a string -> string map. The file is memory-mapped; opening it validates every
// entry, so a bad file fails at open with a message naming the file, tensor and field.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "lrc/io/dtype.h"
#include "lrc/io/mapped_file.h"

namespace lrc {

struct SafetensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t offset = 0;  // absolute byte offset in the file
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  void drop_pages() const { file_.drop_pages(); }  // MappedFile::drop_pages
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws "<file>: missing tensor '<name>'" if absent.
  const SafetensorInfo& info(const std::string& name) const;
  // Tensors in data-section order.
  const std::vector<SafetensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor as float32 (F32/F16/BF16/F64); other dtypes throw naming tensor and dtype.
  std::vector<float> read_f32(const std::string& name) const;
  // The stored bytes of any dtype (packed quantized data: U8/I8/I32), valid while this
  // object lives; read_bytes copies them.
  std::span<const uint8_t> bytes(const std::string& name) const;
  std::vector<uint8_t> read_bytes(const std::string& name) const;

 private:
  MappedFile file_;
  std::vector<SafetensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lrc
