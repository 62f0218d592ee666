// A read-only memory map of a whole file (mmap). Loaders read tensors straight out of the
// map, so opening a large checkpoint costs no copy until a tensor is converted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace lrc {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws lrc::Error naming `path` if it cannot be opened or mapped. An empty file maps to
  // an empty span.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Drops the pages read so far from this process's memory (madvise MADV_DONTNEED; the data
  // stays in the file and is read again if touched): a loader that reads a huge file a part at
  // a time keeps its resident size at one part.
  void drop_pages() const;

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lrc
