// The bad-input table: malformed files for every reader and out-of-range values for the CLI's
// options, each run through the real binary. Every case must end with exit code 1 (not a
// signal, not a hang), exactly one "error: ..." line on stderr naming the file or option and
// what is wrong, and no output left under the final name (nor a .partial beside it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lrc/io/gguf_writer.h"
#include "lrc/io/hf_writer.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/quantize_model.h"
#include "support/paths.h"
#include "support/random_calibration.h"
#include "support/random_model.h"
#include "support/run_command.h"
#include "support/safetensors_edit.h"

namespace fs = std::filesystem;
using namespace lrc;
using json = nlohmann::json;

namespace {

using test::poke_f32;
using test::read_bytes;
using test::write_bytes;

// A copy of directory `from` at `to` (flat: models and checkpoints have no subfolders).
void copy_dir(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    fs::copy_file(e.path(), fs::path(to) / e.path().filename());
}

// Rewrites the JSON header of a safetensors file with `edit`; the data section is kept, so the
// edited offsets/dtypes/shapes are what the reader sees.
void edit_safetensors_header(const std::string& path, const std::function<void(json&)>& edit) {
  const std::string b = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  json h = json::parse(b.substr(8, n));
  edit(h);
  const std::string hs = h.dump();
  const uint64_t m = hs.size();
  std::string out(reinterpret_cast<const char*>(&m), 8);
  write_bytes(path, out + hs + b.substr(8 + n));
}

void edit_json(const std::string& path, const std::function<void(json&)>& edit) {
  json j = json::parse(read_bytes(path));
  edit(j);
  write_bytes(path, j.dump());
}

struct Case {
  std::string name;
  std::function<void(const std::string& dir)> setup;  // writes the case's files under dir
  std::string args;                                   // after the binary; $D = the case's dir
  std::vector<std::string> expect;                    // each must appear in the error line
  std::string no_output;                              // path that must not exist afterwards
};

std::string subst(std::string s, const std::string& dir) {
  for (size_t p; (p = s.find("$D")) != std::string::npos;) s.replace(p, 2, dir);
  return s;
}

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = test::temp_dir("bad-input");
    // A tiny valid HF model, GGUF file and lrc checkpoint to break in different ways.
    LlamaModel m = test::random_model(test::tiny_config(32, 64, 2, 4, 2, 61, 32), 7);
    save_hf_model(m, root_ + "/hf");
    save_gguf_model(m, nullptr, root_ + "/m.gguf");
    QuantizeOptions opt;
    opt.method = QuantMethod::RTN;
    const CalibrationSet calib = test::random_calibration(61, 2, 16, 1);
    const QuantizeReport rep = quantize_model(m, calib, opt);
    CheckpointInfo info;
    info.options = opt;
    info.calib = &calib;
    info.report = &rep;
    save_checkpoint(m, root_ + "/ckpt", info);
  }
  static std::string root_;
};
std::string BadInput::root_;

TEST_F(BadInput, EveryCaseFailsCleanlyWithItsMessage) {
  const std::string R = root_;
  const std::string model22 = test::default_model_dir();
  const std::string calib = test::shared("data/debtext-calib.txt");
  const std::string valid = test::shared("data/debtext-valid.txt");
  auto hf = [R](const std::string& d) { copy_dir(R + "/hf", d + "/m"); };
  auto ckpt = [R](const std::string& d) { copy_dir(R + "/ckpt", d + "/m"); };
  auto text = [](const std::string& bytes) {
    return [bytes](const std::string& d) { write_bytes(d + "/t.txt", bytes); };
  };
  const std::string q22 = "quantize --model " + model22 + " --calib " + calib +
                          " --out $D/q";
  const std::string e22 = "eval --model " + model22 + " --seq 16 --max-chunks 1";

  const std::vector<Case> cases = {
      // --- Model files (lrc inspect reads and validates them whole).
      {"missing path", nullptr, "inspect --model $D/nope", {"$D/nope", "no such file"}, ""},
      {"directory without config.json", [](auto& d) { fs::create_directories(d + "/m"); },
       "inspect --model $D/m", {"$D/m", "no config.json"}, ""},
      {"config.json not JSON",
       [&](auto& d) { hf(d); write_bytes(d + "/m/config.json", "{not json"); },
       "inspect --model $D/m", {"$D/m/config.json", "bad JSON"}, ""},
      {"config.json missing field",
       [&](auto& d) { hf(d); edit_json(d + "/m/config.json", [](json& j) { j.erase("hidden_size"); }); },
       "inspect --model $D/m", {"$D/m/config.json", "missing field 'hidden_size'"}, ""},
      {"config.json negative layer count",
       [&](auto& d) { hf(d); edit_json(d + "/m/config.json", [](json& j) { j["num_hidden_layers"] = -3; }); },
       "inspect --model $D/m", {"$D/m/config.json", "num_hidden_layers", "non-negative"}, ""},
      {"config.json heads do not divide the width",
       [&](auto& d) {
         hf(d);
         edit_json(d + "/m/config.json", [](json& j) { j["num_attention_heads"] = 3; j["num_key_value_heads"] = 3; });
       },
       "inspect --model $D/m", {"$D/m/config.json", "does not divide"}, ""},
      {"config.json zero heads (found by fuzzing: a division by zero)",
       [&](auto& d) { hf(d); edit_json(d + "/m/config.json", [](json& j) { j["num_attention_heads"] = 0; }); },
       "inspect --model $D/m", {"$D/m/config.json", "num_attention_heads", "must be positive"}, ""},
      // 10^12 parameters: refused at the first tensor's shape, before anything that size exists.
      {"config.json asks for 10^12 parameters",
       [&](auto& d) {
         hf(d);
         edit_json(d + "/m/config.json", [](json& j) {
           j["hidden_size"] = 65536; j["intermediate_size"] = 262144; j["num_hidden_layers"] = 20000;
           j["num_attention_heads"] = 512; j["num_key_value_heads"] = 512;
         });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "contradicts config.json"}, ""},
      {"safetensors shorter than its length field",
       [&](auto& d) { hf(d); fs::resize_file(d + "/m/model.safetensors", 6); },
       "inspect --model $D/m", {"$D/m/model.safetensors", "too short"}, ""},
      {"safetensors header length past the end",
       [&](auto& d) { hf(d); fs::resize_file(d + "/m/model.safetensors", 100); },
       "inspect --model $D/m", {"$D/m/model.safetensors", "runs past the end of the file"}, ""},
      {"safetensors header not JSON",
       [&](auto& d) {
         hf(d);
         std::string b = read_bytes(d + "/m/model.safetensors");
         b[8] = '[';
         b[9] = '[';
         write_bytes(d + "/m/model.safetensors", b);
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "bad JSON header"}, ""},
      {"safetensors tensor offsets out of range",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors", [](json& h) {
           h["model.norm.weight"]["data_offsets"] = {0, 1000000000};
         });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "model.norm.weight", "run past the end"}, ""},
      {"safetensors tensors overlap",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors", [](json& h) {
           const auto o = h["model.embed_tokens.weight"]["data_offsets"][0].get<uint64_t>();
           h["model.norm.weight"]["data_offsets"] = {o, o + 32 * 4};
         });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "overlap"}, ""},
      {"safetensors dtype does not match the byte count",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors",
                                 [](json& h) { h["model.norm.weight"]["dtype"] = "F16"; });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "model.norm.weight", "needs 64 bytes"}, ""},
      {"safetensors unknown dtype",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors",
                                 [](json& h) { h["model.norm.weight"]["dtype"] = "Q9"; });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "unknown dtype 'Q9'"}, ""},
      {"safetensors shape contradicts the config",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors", [](json& h) {
           h["model.layers.1.mlp.up_proj.weight"]["shape"] = {32, 64};
         });
       },
       "inspect --model $D/m", {"model.layers.1.mlp.up_proj.weight", "contradicts config.json"}, ""},
      {"safetensors tensor missing",
       [&](auto& d) {
         hf(d);
         edit_safetensors_header(d + "/m/model.safetensors",
                                 [](json& h) { h.erase("model.layers.0.self_attn.k_proj.weight"); });
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "missing tensor 'model.layers.0.self_attn.k_proj.weight'"}, ""},
      {"NaN weight",
       [&](auto& d) {
         hf(d);
         poke_f32(d + "/m/model.safetensors", "model.layers.1.mlp.up_proj.weight", 5,
                  std::numeric_limits<float>::quiet_NaN());
       },
       "inspect --model $D/m", {"$D/m", "layers.1.mlp.up_proj", "NaN value at element 5"}, ""},
      {"infinite weight",
       [&](auto& d) {
         hf(d);
         poke_f32(d + "/m/model.safetensors", "model.norm.weight", 3,
                  std::numeric_limits<float>::infinity());
       },
       "inspect --model $D/m", {"$D/m", "'norm'", "infinite value at element 3"}, ""},
      {"sharded index names a missing shard",
       [&](auto& d) {
         fs::create_directories(d + "/m");
         fs::copy_file(R + "/hf/config.json", d + "/m/config.json");
         write_bytes(d + "/m/model.safetensors.index.json",
                     R"({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})");
       },
       "inspect --model $D/m", {"model.safetensors.index.json", "missing shard 'model-00001-of-00002.safetensors'"}, ""},
      {"sharded index not JSON",
       [&](auto& d) {
         fs::create_directories(d + "/m");
         fs::copy_file(R + "/hf/config.json", d + "/m/config.json");
         write_bytes(d + "/m/model.safetensors.index.json", "[1, 2");
       },
       "inspect --model $D/m", {"$D/m/model.safetensors.index.json", "bad JSON"}, ""},
      {"GGUF truncated",
       [&](auto& d) { write_bytes(d + "/m.gguf", read_bytes(R + "/m.gguf").substr(0, 13)); },
       "inspect --model $D/m.gguf", {"$D/m.gguf", "truncated"}, ""},
      {"GGUF tensor data cut off",
       [&](auto& d) {
         const std::string b = read_bytes(R + "/m.gguf");
         write_bytes(d + "/m.gguf", b.substr(0, b.size() - 100));
       },
       "inspect --model $D/m.gguf", {"$D/m.gguf"}, ""},
      {"GGUF absurd block count",
       [&](auto& d) {
         const LlamaModel m = test::random_model(test::tiny_config(32, 64, 2, 4, 2, 61, 32), 7);
         GgufWriter w = gguf_model_writer(m, nullptr);
         w.set("llama.block_count", gguf::Value::u32(1000000));
         w.write(d + "/m.gguf");
       },
       "inspect --model $D/m.gguf", {"$D/m.gguf", "llama.block_count"}, ""},
      {"llama2.c file shorter than its header", [](auto& d) { write_bytes(d + "/m.bin", std::string(10, '\1')); },
       "inspect --model $D/m.bin", {"$D/m.bin", "too short for the 28-byte llama2.c header"}, ""},
      {"llama2.c file shorter than its weights",
       [&](auto& d) {
         write_bytes(d + "/m.bin", read_bytes(model22 + "/llama2c/model.bin").substr(0, 5000));
       },
       "inspect --model $D/m.bin", {"$D/m.bin", "truncated"}, ""},
      // --- Tokenizers.
      {"tokenizer.model not a sentencepiece model",
       [&](auto& d) { hf(d); write_bytes(d + "/m/tokenizer.model", std::string(1000, 'x')); },
       "inspect --model $D/m", {"$D/m/tokenizer.model", "not a sentencepiece model"}, ""},
      {"tokenizer.json malformed",
       [&](auto& d) { hf(d); write_bytes(d + "/m/tokenizer.json", R"({"model": {"type": "BPE", "vocab": 5}})"); },
       "inspect --model $D/m", {"$D/m/tokenizer.json", "model.vocab"}, ""},
      {"--tokenizer file missing", nullptr, "inspect --model " + R + "/hf --tokenizer $D/nope.model",
       {"$D/nope.model", "tokenizer file not found"}, ""},
      // --- lrc checkpoints.
      {"lrc_config.json not JSON",
       [&](auto& d) { ckpt(d); write_bytes(d + "/m/lrc_config.json", R"({"format": "lrc", broken)"); },
       "inspect --model $D/m", {"$D/m/lrc_config.json", "invalid JSON"}, ""},
      {"checkpoint of another format version",
       [&](auto& d) { ckpt(d); edit_json(d + "/m/lrc_config.json", [](json& j) { j["format"] = "lrc-quantized-v99"; }); },
       "inspect --model $D/m", {"$D/m/lrc_config.json", "field 'format'"}, ""},
      {"checkpoint bits out of range",
       [&](auto& d) {
         ckpt(d);
         edit_json(d + "/m/lrc_config.json", [](json& j) { j["linears"]["model.layers.0.mlp.down_proj"]["bits"] = 11; });
       },
       "inspect --model $D/m", {"$D/m/lrc_config.json", "model.layers.0.mlp.down_proj", "bits must be in"}, ""},
      {"checkpoint negative rank",
       [&](auto& d) {
         ckpt(d);
         edit_json(d + "/m/lrc_config.json", [](json& j) { j["linears"]["model.layers.1.self_attn.q_proj"]["rank"] = -5; });
       },
       "inspect --model $D/m", {"$D/m/lrc_config.json", "model.layers.1.self_attn.q_proj", "rank -5 outside"}, ""},
      {"checkpoint activation clip out of range",
       [&](auto& d) {
         ckpt(d);
         edit_json(d + "/m/lrc_config.json", [](json& j) { j["linears"]["model.layers.0.mlp.up_proj"]["act_clip"] = 3.0; });
       },
       "inspect --model $D/m", {"$D/m/lrc_config.json", "act_clip must be in (0, 1]"}, ""},
      {"checkpoint without model.safetensors",
       [&](auto& d) { ckpt(d); fs::remove(d + "/m/model.safetensors"); },
       "inspect --model $D/m", {"$D/m/model.safetensors", "cannot open"}, ""},
      {"checkpoint tensors truncated",
       [&](auto& d) {
         ckpt(d);
         fs::resize_file(d + "/m/model.safetensors", fs::file_size(d + "/m/model.safetensors") - 100);
       },
       "inspect --model $D/m", {"$D/m/model.safetensors", "run past the end"}, ""},
      // --- Text files.
      {"--data empty", text(""), e22 + " --data $D/t.txt", {"$D/t.txt", "empty"}, ""},
      {"--data binary", text(std::string("\x01\x02\xff\xfe", 4) + std::string(100, '\0')),
       e22 + " --data $D/t.txt", {"$D/t.txt", "not valid UTF-8"}, ""},
      {"--data not UTF-8 (Latin-1)", text("caf\xe9 au lait"), e22 + " --data $D/t.txt",
       {"$D/t.txt", "not valid UTF-8 (byte offset 3)"}, ""},
      {"--data a directory", nullptr, e22 + " --data $D", {"$D", "is a directory"}, ""},
      {"--data missing", nullptr, e22 + " --data $D/nope.txt", {"$D/nope.txt", "cannot open"}, ""},
      {"--calib empty", text(""), "quantize --model " + model22 + " --calib $D/t.txt --out $D/q",
       {"$D/t.txt", "empty"}, "$D/q"},
      {"--tasks malformed JSONL", text("not json\n"), "eval --model " + model22 + " --tasks $D/t.txt",
       {"$D/t.txt:1", "malformed JSON"}, ""},
      {"--tasks number overflow (found by fuzzing)", text(R"({"context": "a", "label": 9E999999})" "\n"),
       "eval --model " + model22 + " --tasks $D/t.txt", {"$D/t.txt:1", "malformed JSON"}, ""},
      {"--tasks with one choice", text(R"({"context": "a", "choices": ["b"], "label": 0})" "\n"),
       "eval --model " + model22 + " --tasks $D/t.txt", {"$D/t.txt:1", "at least 2 choices"}, ""},
      // --- Options.
      {"eval --seq 0", nullptr, "eval --model " + model22 + " --data " + valid + " --seq 0",
       {"--seq must be >= 1"}, ""},
      {"eval --max-chunks -1", nullptr,
       "eval --model " + model22 + " --seq 16 --data " + valid + " --max-chunks -1",
       {"--max-chunks must be >= 0"}, ""},
      {"eval --device tpu", nullptr, e22 + " --data " + valid + " --device tpu", {"--device", "'tpu'"}, ""},
      {"eval --kernels fast", nullptr, e22 + " --data " + valid + " --kernels fast", {"--kernels", "'fast'"}, ""},
      {"eval --gpu-math bf16", nullptr, e22 + " --data " + valid + " --gpu-math bf16", {"--gpu-math", "'bf16'"}, ""},
      {"eval --gpu-math tf32 on the CPU", nullptr, e22 + " --data " + valid + " --gpu-math tf32",
       {"--gpu-math", "needs --device cuda"}, ""},
      {"generate --max-tokens -1", nullptr, "generate --model " + model22 + " --prompt hi --max-tokens -1",
       {"--max-tokens", "must be >= 0"}, ""},
      {"quantize --rank -0.1", nullptr, q22 + " --rank -0.1 --method lrc", {"--rank"}, "$D/q"},
      {"quantize --rank 2.5", nullptr, q22 + " --rank 2.5 --method lrc", {"--rank", "integer"}, "$D/q"},
      {"quantize --wbits 9", nullptr, q22 + " --wbits 9", {"--wbits", "2..8"}, "$D/q"},
      {"quantize --abits 0", nullptr, q22 + " --abits 0", {"--abits"}, "$D/q"},
      {"quantize --w-groupsize 7", nullptr, q22 + " --w-groupsize 7", {"--w-groupsize", "does not divide"}, "$D/q"},
      {"quantize --a-clip 1.5", nullptr, q22 + " --a-clip 1.5", {"--a-clip"}, "$D/q"},
      {"quantize --nsamples 0", nullptr, q22 + " --nsamples 0", {"--nsamples", ">= 1"}, "$D/q"},
      {"quantize --seq -5", nullptr, q22 + " --seq -5", {"--seq", ">= 0"}, "$D/q"},
      {"quantize --method foo", nullptr, q22 + " --method foo", {"--method", "'foo'"}, "$D/q"},
      {"quantize --gpu-math tf32 on the CPU", nullptr, q22 + " --gpu-math tf32",
       {"--gpu-math", "needs --device cuda"}, "$D/q"},
      {"quantize --rotation foo", nullptr, q22 + " --rotation foo", {"--rotation", "'foo'"}, "$D/q"},
      {"quantize --rotation-objective max", nullptr, q22 + " --rotation calibrated --rotation-objective max",
       {"--rotation-objective", "'max'"}, "$D/q"},
      {"quantize --rotation-steps -1", nullptr, q22 + " --rotation calibrated --rotation-steps -1",
       {"--rotation-steps"}, "$D/q"},
      {"quantize --smooth 2", nullptr, q22 + " --smooth 2", {"--smooth", "[0, 1]"}, "$D/q"},
      {"quantize --rotation calibrated --no-rotate", nullptr, q22 + " --rotation calibrated --no-rotate",
       {"--rotation", "--no-rotate"}, "$D/q"},
      {"demo --rotation foo", nullptr, "demo --model " + model22 + " --no-fp --methods rtn --rotation foo",
       {"--rotation", "'foo'"}, ""},
      {"quantize --out under a file", text("x"),
       "quantize --model " + model22 + " --calib " + calib + " --nsamples 1 --seq 16 --method rtn --out $D/t.txt/q",
       {"$D/t.txt/q", "cannot create output directory"}, ""},
      // A full disk: past the file-size limit the checkpoint write fails, and the unfinished
      // output is removed.
      {"quantize onto a full disk (ulimit -f)", nullptr, q22 + " --method rtn --nsamples 1 --seq 16", {"$D/q.partial/model.safetensors", "write failed"},
       "$D/q"},
  };
  ASSERT_GE(cases.size(), 30u);

  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    const std::string dir = R + "/case" + std::to_string(i);
    fs::create_directories(dir);
    if (c.setup) c.setup(dir);
    std::string cmd = "timeout 120 " + test::lrc_binary() + " " + subst(c.args, dir) + " 2>&1 >/dev/null";
    if (c.name.find("ulimit") != std::string::npos) cmd = "ulimit -f 200; " + cmd;
    const test::RunResult r = test::run_command("OMP_NUM_THREADS=1 sh -c '" + cmd + "'");
    EXPECT_EQ(r.exit_code, 1) << r.out;  // not a signal (>= 128), not timeout's 124
    // Progress lines may come first; the error is the last line, and the only "error:" one.
    const size_t at = r.out.rfind("error: ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("error: "), at) << r.out;
    const std::string line = r.out.substr(at);
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "not one line at the end: " << r.out;
    for (const std::string& e : c.expect)
      EXPECT_NE(line.find(subst(e, dir)), std::string::npos) << "missing '" << subst(e, dir) << "' in " << line;
    if (!c.no_output.empty()) {
      EXPECT_FALSE(fs::exists(subst(c.no_output, dir)));
      EXPECT_FALSE(fs::exists(subst(c.no_output, dir) + ".partial"));
    }
  }
  fs::remove_all(R);
}

}  // namespace
