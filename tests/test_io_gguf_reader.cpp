// GGUF parsing: every metadata value type, tensor infos and data, alignment, and one clear
// lrc::Error (naming the file and the field) for each kind of malformed file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/gguf.h"
#include "lrc/io/gguf_writer.h"
#include "support/paths.h"

using namespace lrc;
using namespace lrc::gguf;

namespace {

// Hand-assembled GGUF bytes, for headers the writer would never produce.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    return put<uint32_t>(kMagic).put(version).put(n_tensors).put(n_kv);
  }
};

std::string write_temp(const std::string& dir, const std::string& name,
                       const std::vector<uint8_t>& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Opening `path` throws an lrc::Error whose message holds every one of `parts`.
void expect_error(const std::string& path, std::initializer_list<std::string> parts) {
  try {
    GgufFile f(path);
    FAIL() << path << " parsed";
  } catch (const Error& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << p << "\"";
  }
}

GgufWriter sample_writer() {
  GgufWriter w;
  w.set("u8", Value{ValueType::UINT8, ValueType::UINT8, uint64_t{200}});
  w.set("i8", Value{ValueType::INT8, ValueType::UINT8, int64_t{-100}});
  w.set("u16", Value{ValueType::UINT16, ValueType::UINT8, uint64_t{60000}});
  w.set("i16", Value{ValueType::INT16, ValueType::UINT8, int64_t{-30000}});
  w.set("u32", Value::u32(4000000000u));
  w.set("i32", Value::i32(-2000000000));
  w.set("u64", Value::u64(1ull << 60));
  w.set("i64", Value{ValueType::INT64, ValueType::UINT8, int64_t{-(1ll << 60)}});
  w.set("f32", Value::f32(0.1f));
  w.set("f64", Value{ValueType::FLOAT64, ValueType::UINT8, 0.1});
  w.set("yes", Value::boolean(true));
  w.set("name", Value::str("naïve 👍"));
  w.set("empty", Value::str(""));
  w.set("strings", Value::string_array({"a", "", "Ġthe"}));
  w.set("ints", Value::i32_array({1, -2, 3}));
  w.set("nested", Value::array(ValueType::ARRAY, {Value::i32_array({1, 2}), Value::i32_array({}),
                                                  Value::i32_array({3})}));
  w.set("nested_strings", Value::array(ValueType::ARRAY, {Value::string_array({"x", "y"}),
                                                          Value::string_array({"z"})}));
  return w;
}

}  // namespace

TEST(GgufReader, EveryMetadataValueType) {
  const auto bytes = sample_writer().bytes();
  GgufFile f(bytes, "mem.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.metadata()[0].key, "u8");  // file order kept
  EXPECT_EQ(f.get_uint("u8"), 200u);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_uint("u16"), 60000u);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_uint("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_uint("u64"), 1ull << 60);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 60));
  EXPECT_EQ(f.get_float("f32"), static_cast<double>(0.1f));
  EXPECT_EQ(f.get_float("f64"), 0.1);
  EXPECT_EQ(f.find("f32")->type, ValueType::FLOAT32);
  EXPECT_TRUE(f.get_bool("yes"));
  EXPECT_EQ(f.get_string("name"), "naïve 👍");
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(f.get_string_array("strings"), (std::vector<std::string>{"a", "", "Ġthe"}));
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<int64_t>{1, -2, 3}));
  const auto& nested = f.get_array("nested", ValueType::ARRAY);
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(std::get<Value::Array>(nested[0].data).size(), 2u);
  EXPECT_EQ(std::get<Value::Array>(nested[1].data).size(), 0u);
  EXPECT_EQ(std::get<int64_t>(std::get<Value::Array>(nested[2].data)[0].data), 3);
  const auto& ns = f.get_array("nested_strings", ValueType::ARRAY);
  EXPECT_EQ(std::get<std::string>(std::get<Value::Array>(ns[1].data)[0].data), "z");

  // Typed access errors name the file and the key.
  try {
    f.get_string("u32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "mem.gguf: metadata 'u32': has type uint32, expected string");
  }
  try {
    f.get_uint("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "mem.gguf: metadata 'nope': missing");
  }
  EXPECT_THROW(f.get_uint("i8"), Error);                        // negative
  EXPECT_THROW(f.get_array("ints", ValueType::STRING), Error);  // wrong element type
}

TEST(GgufReader, TensorsAlignmentAndData) {
  GgufWriter w = sample_writer();
  w.set_alignment(64);
  std::vector<float> a(3 * 5), b(7);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * static_cast<float>(i) - 3.f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i * i);
  w.add_tensor("a", {3, 5}, a);
  w.add_tensor("b16", {7}, b, GgmlType::F16);
  const auto bytes = w.bytes();
  GgufFile f(bytes, "t.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* ta = f.find_tensor("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->ne, (std::vector<int64_t>{5, 3}));  // ggml order
  EXPECT_EQ(ta->shape(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(ta->n_bytes, 60u);
  EXPECT_EQ(f.tensor_f32(*ta), a);
  const TensorInfo* tb = f.find_tensor("b16");
  EXPECT_EQ(tb->offset % 64, 0u);
  EXPECT_EQ(tb->type, static_cast<uint32_t>(GgmlType::F16));
  EXPECT_EQ(f.tensor_f32(*tb), b);  // small integers are exact in f16
  EXPECT_EQ(f.find_tensor("c"), nullptr);

  // The same through a file (mmap).
  const std::string dir = lrc::test::temp_dir("gguf-reader");
  const std::string path = write_temp(dir, "t.gguf", bytes);
  GgufFile g(path);
  EXPECT_EQ(g.tensor_f32(*g.find_tensor("a")), a);
  std::filesystem::remove_all(dir);
}

TEST(GgufReader, Version2AndDefaultAlignment) {
  Bytes b;
  b.header(2, 1, 1).str("general.name").put<uint32_t>(8).str("v2");
  b.str("w").put<uint32_t>(1).put<uint64_t>(4).put<uint32_t>(0).put<uint64_t>(0);
  while (b.b.size() % 32) b.b.push_back(0);
  for (float x : {1.f, 2.f, 3.f, 4.f}) b.put(x);
  GgufFile f(b.b, "v2.gguf");
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.tensor_f32(f.tensors()[0]), (std::vector<float>{1, 2, 3, 4}));
}

// Every malformed header gives one lrc::Error naming the file and the field.
TEST(GgufReader, MalformedFilesGiveClearErrors) {
  const std::string dir = lrc::test::temp_dir("gguf-bad");
  auto path_of = [&](const std::string& name, const Bytes& b) {
    return write_temp(dir, name, b.b);
  };

  Bytes bad_magic;
  bad_magic.put<uint32_t>(0x46554746).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(0);
  expect_error(path_of("magic.gguf", bad_magic), {"magic.gguf", "magic", "not a GGUF"});

  Bytes v1;
  v1.header(1, 0, 0);
  expect_error(path_of("v1.gguf", v1), {"v1.gguf", "version 1"});
  Bytes v9;
  v9.header(9, 0, 0);
  expect_error(path_of("v9.gguf", v9), {"v9.gguf", "unsupported version 9"});
  Bytes big_endian;
  big_endian.header(0x03000000, 0, 0);
  expect_error(path_of("be.gguf", big_endian), {"big-endian"});

  Bytes short_header;
  short_header.put<uint32_t>(kMagic).put<uint32_t>(3).put<uint32_t>(0);
  expect_error(path_of("short.gguf", short_header), {"short.gguf", "tensor count", "truncated"});

  Bytes tiny;
  tiny.b = {'G', 'G'};
  expect_error(path_of("tiny.gguf", tiny), {"tiny.gguf", "not GGUF"});

  Bytes long_string;
  long_string.header(3, 0, 1).put<uint64_t>(1ull << 40);  // key length past the end
  expect_error(path_of("key.gguf", long_string),
               {"key.gguf", "metadata kv 0 key", "string length 1099511627776 runs past the end"});

  Bytes long_value;
  long_value.header(3, 0, 1).str("general.name").put<uint32_t>(8).put<uint64_t>(99).put<char>('x');
  expect_error(path_of("value.gguf", long_value), {"metadata 'general.name'", "runs past the end"});

  Bytes long_array;
  long_array.header(3, 0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1ull << 62);
  expect_error(path_of("array.gguf", long_array), {"metadata 'arr'", "array length"});

  Bytes bad_vtype;
  bad_vtype.header(3, 0, 1).str("k").put<uint32_t>(13);
  expect_error(path_of("vtype.gguf", bad_vtype), {"metadata 'k'", "unknown value type 13"});

  Bytes bad_bool;
  bad_bool.header(3, 0, 1).str("flag").put<uint32_t>(7).put<uint8_t>(7);
  expect_error(path_of("bool.gguf", bad_bool), {"metadata 'flag'", "bool"});

  Bytes dup;
  dup.header(3, 0, 2)
      .str("k")
      .put<uint32_t>(4)
      .put<uint32_t>(1)
      .str("k")
      .put<uint32_t>(4)
      .put<uint32_t>(2);
  expect_error(path_of("dup.gguf", dup), {"metadata 'k'", "duplicate"});

  Bytes bad_align;
  bad_align.header(3, 0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(24);
  expect_error(path_of("align.gguf", bad_align), {"general.alignment", "power of two"});

  auto tensor_file = [&](uint32_t n_dims, uint64_t ne0, uint32_t type, uint64_t offset,
                         size_t data_bytes) {
    Bytes b;
    b.header(3, 1, 0).str("blk.0.w").put(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) b.put<uint64_t>(d == 0 ? ne0 : 1);
    b.put(type).put(offset);
    while (b.b.size() % 32) b.b.push_back(0);
    b.b.resize(b.b.size() + data_bytes, 0);
    return b;
  };
  expect_error(path_of("type.gguf", tensor_file(1, 32, 99, 0, 128)),
               {"type.gguf", "tensor 'blk.0.w'", "unknown tensor type 99"});
  expect_error(path_of("past.gguf", tensor_file(1, 64, 0, 0, 128)),  // needs 256 bytes
               {"past.gguf", "tensor 'blk.0.w'", "runs past the end"});
  expect_error(path_of("offset.gguf", tensor_file(1, 8, 0, 1ull << 62, 128)),
               {"tensor 'blk.0.w'", "runs past the end"});
  expect_error(path_of("unaligned.gguf", tensor_file(1, 8, 0, 4, 128)),
               {"tensor 'blk.0.w'", "alignment"});
  expect_error(path_of("dims.gguf", tensor_file(5, 8, 0, 0, 128)),
               {"tensor 'blk.0.w'", "n_dims 5"});
  expect_error(path_of("block.gguf", tensor_file(1, 33, 8, 0, 128)),
               {"tensor 'blk.0.w'", "not a multiple of the Q8_0 block size"});
  Bytes overflow;
  overflow.header(3, 1, 0)
      .str("w")
      .put<uint32_t>(2)
      .put<uint64_t>(1ull << 40)
      .put<uint64_t>(1ull << 40);
  overflow.put<uint32_t>(0).put<uint64_t>(0);
  expect_error(path_of("overflow.gguf", overflow), {"tensor 'w'", "overflows"});

  // A known type lrc cannot dequantize: parsing works, conversion names tensor and type.
  {
    const std::string p = path_of("q4k.gguf", tensor_file(1, 256, 12, 0, 144));
    GgufFile f(p);
    try {
      f.tensor_f32(f.tensors()[0]);
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("q4k.gguf: tensor 'blk.0.w': tensor type Q4_K"),
                std::string::npos)
          << e.what();
    }
  }
  expect_error(dir + "/does-not-exist.gguf", {"does-not-exist.gguf"});
  std::filesystem::remove_all(dir);
}

// Every strict prefix of a valid file is rejected with lrc::Error (no crash, no partial parse).
TEST(GgufReader, EveryTruncationIsAnError) {
  GgufWriter w = sample_writer();
  std::vector<float> a(40, 1.f);
  w.add_tensor("a", {40}, a);
  const auto bytes = w.bytes();
  const size_t needed = bytes.size();  // the tensor's 160 bytes end the file (no padding)
  for (size_t n = 0; n < needed; ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    EXPECT_THROW(GgufFile(prefix, "cut.gguf"), Error) << "prefix of " << n << " bytes";
  }
  EXPECT_NO_THROW(GgufFile(bytes, "full.gguf"));
}
