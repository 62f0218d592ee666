// Safetensors reader/writer: round trip, atomic writes, and every bad-input error.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/safetensors.h"
#include "lrc/io/safetensors_writer.h"
#include "support/paths.h"

namespace fs = std::filesystem;
using namespace lrc;

namespace {

// Writes [u64 len][header][data] verbatim (header_len overrides the true length if >= 0).
std::string write_raw(const std::string& dir, const std::string& name, const std::string& header,
                      const std::string& data, int64_t header_len = -1) {
  const std::string path = dir + "/" + name;
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header_len >= 0 ? static_cast<uint64_t>(header_len) : header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f << header << data;
  return path;
}

// Expects SafetensorsFile(path) to throw a message containing the path and every needle.
void expect_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    SafetensorsFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Safetensors, RoundTripF32F16U8I32AndMetadata) {
  const std::string dir = test::temp_dir("st-roundtrip");
  std::vector<float> a(2 * 3), b(5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.1f * static_cast<float>(i) - 0.25f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0f / static_cast<float>(i + 3);
  const std::vector<uint8_t> codes = {0x00, 0x12, 0xff, 0x7f, 0x80};
  const std::vector<int32_t> ints = {-7, 0, 1 << 30};
  SafetensorsWriter w;
  w.add_f32("a", {2, 3}, a);
  w.add_f32("b.half", {5}, b, DType::F16);
  w.add_bytes("codes", DType::U8, {5}, codes);
  w.add_bytes("ints", DType::I32, {3},
              {reinterpret_cast<const uint8_t*>(ints.data()), ints.size() * 4});
  w.add_f32("empty", {0, 4}, {});
  w.set_metadata("format", "lrc");
  w.set_metadata("note", "x=1");
  const std::string path = dir + "/t.safetensors";
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "lrc");
  EXPECT_EQ(f.metadata().at("note"), "x=1");
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // data-section order = insertion order
  EXPECT_EQ(f.info("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.info("a").dtype, DType::F32);
  EXPECT_EQ(f.read_f32("a"), a);  // bit-exact
  EXPECT_EQ(f.info("b.half").dtype, DType::F16);
  const auto bh = f.read_f32("b.half");
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(bh[i], f16_to_f32(f32_to_f16(b[i])));
  EXPECT_EQ(f.info("codes").dtype, DType::U8);
  EXPECT_EQ(f.read_bytes("codes"), codes);
  const auto ib = f.bytes("ints");
  ASSERT_EQ(ib.size(), 12u);
  std::vector<int32_t> back(3);
  std::memcpy(back.data(), ib.data(), 12);
  EXPECT_EQ(back, ints);
  EXPECT_EQ(f.info("empty").numel(), 0);
  // Data section starts 8-byte aligned.
  EXPECT_EQ(f.info("a").offset % 8, 0u);
  // Integer tensors are not silently converted to float.
  EXPECT_THROW(f.read_f32("codes"), Error);
  fs::remove_all(dir);
}

TEST(Safetensors, WriterLeavesNoFileWhenItFails) {
  const std::string dir = test::temp_dir("st-fail");
  SafetensorsWriter w;
  w.add_f32("x", {2}, std::vector<float>{1.f, 2.f});
  // Directory does not exist: the temp file cannot be created.
  const std::string missing = dir + "/no/such/dir/x.safetensors";
  EXPECT_THROW(w.write(missing), Error);
  EXPECT_FALSE(fs::exists(missing));
  // Target is a non-empty directory: the temp file is written, the rename fails, and the
  // temp file must be removed.
  const std::string target = dir + "/occupied.safetensors";
  fs::create_directories(target + "/child");
  try {
    w.write(target);
    FAIL() << "write over a non-empty directory succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(target + ".tmp"));
  EXPECT_TRUE(fs::is_directory(target));
  // Bad input to the writer itself.
  EXPECT_THROW(w.add_f32("y", {3}, std::vector<float>{1.f}), Error);       // size != shape
  EXPECT_THROW(w.add_f32("x", {2}, std::vector<float>{1.f, 2.f}), Error);  // duplicate name
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, TruncatedData) {
  const std::string dir = test::temp_dir("st-trunc");
  SafetensorsWriter w;
  w.add_f32("model.weight", {16, 16}, std::vector<float>(256, 1.f));
  const std::string path = dir + "/m.safetensors";
  w.write(path);
  fs::resize_file(path, fs::file_size(path) - 100);
  expect_error(path, {"model.weight", "truncated"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, FileShorterThanHeaderLength) {
  const std::string dir = test::temp_dir("st-short");
  const std::string path = dir + "/s.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  expect_error(path, {"truncated", "8-byte header length"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, HeaderLengthPastEndOfFile) {
  const std::string dir = test::temp_dir("st-hlen");
  const std::string path = write_raw(dir, "h.safetensors", "{}", "", 1000000);
  expect_error(path, {"header length 1000000", "past the end of the file"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, BadJson) {
  const std::string dir = test::temp_dir("st-json");
  const std::string path = write_raw(dir, "j.safetensors", "{\"a\": [1, 2", "");
  expect_error(path, {"bad JSON header"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, UnknownDtype) {
  const std::string dir = test::temp_dir("st-dtype");
  const std::string path =
      write_raw(dir, "d.safetensors",
                R"({"layer.w": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 2]}})", "xx");
  expect_error(path, {"tensor 'layer.w'", "unknown dtype 'Q4_K'"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, ShapeTimesDtypeSizeIsNotByteLength) {
  const std::string dir = test::temp_dir("st-size");
  const std::string path =
      write_raw(dir, "z.safetensors",
                R"({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 8]}})", "01234567");
  expect_error(path, {"tensor 'w'", "[2, 3]", "F16", "needs 12 bytes", "span 8"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, DataOffsetsPastEnd) {
  const std::string dir = test::temp_dir("st-offs");
  const std::string path =
      write_raw(dir, "o.safetensors",
                R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})", "0123");
  expect_error(path, {"tensor 'w'", "data_offsets [4, 8]", "past the end"});
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, MissingFieldAndMissingTensor) {
  const std::string dir = test::temp_dir("st-field");
  const std::string p1 =
      write_raw(dir, "f.safetensors", R"({"w": {"dtype": "U8", "shape": [4]}})", "0123");
  expect_error(p1, {"tensor 'w'", "data_offsets"});
  const std::string p2 =
      write_raw(dir, "g.safetensors",
                R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", "0123");
  SafetensorsFile f(p2);
  try {
    f.info("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p2 + ": missing tensor 'nope'"), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(SafetensorsBadInput, MissingFile) {
  expect_error("/nonexistent/dir/model.safetensors", {"cannot open"});
}

TEST(SafetensorsBadInput, NegativeOrFractionalShape) {
  const std::string dir = test::temp_dir("st-neg");
  const std::string p1 =
      write_raw(dir, "n.safetensors",
                R"({"w": {"dtype": "U8", "shape": [-4], "data_offsets": [0, 4]}})", "0123");
  expect_error(p1, {"tensor 'w'", "field 'shape'", "non-negative integers"});
  const std::string p2 =
      write_raw(dir, "f.safetensors",
                R"({"w": {"dtype": "U8", "shape": [2.5], "data_offsets": [0, 4]}})", "0123");
  expect_error(p2, {"tensor 'w'", "field 'shape'"});
  fs::remove_all(dir);
}
