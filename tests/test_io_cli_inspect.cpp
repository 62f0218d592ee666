// `lrc inspect` end to end: the binary on a good model (JSON) and on bad input (exit code,
// one "error: ..." line on stderr naming the file).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lrc/io/hf_writer.h"
#include "support/paths.h"
#include "support/random_model.h"
#include "support/run_command.h"

namespace fs = std::filesystem;

namespace {

using lrc::test::run_command;
using lrc::test::RunResult;

}  // namespace

TEST(CliInspect, BadModelGivesOneErrorLine) {
  const std::string dir = lrc::test::temp_dir("cli-inspect-bad");
  const std::string bin = dir + "/model.bin";
  std::ofstream(bin, std::ios::binary) << "short";
  // stderr only (stdout discarded).
  const RunResult r =
      run_command(lrc::test::lrc_binary() + " inspect --model " + bin + " 2>&1 >/dev/null");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(bin), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "not exactly one line: " << r.out;
  fs::remove_all(dir);
}

TEST(CliInspect, JsonDescribesModel) {
  const std::string dir = lrc::test::temp_dir("cli-inspect-json");
  lrc::LlamaConfig c = lrc::test::tiny_config();
  c.tied_embeddings = false;
  const lrc::LlamaModel m = lrc::test::random_model(c);
  lrc::save_hf_model(m, dir, lrc::DType::F16, 2);
  const RunResult r = run_command(lrc::test::lrc_binary() + " inspect --json --model " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "hf");
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["config"]["dim"], c.dim);
  EXPECT_EQ(j["config"]["n_kv_heads"], c.n_kv_heads);
  EXPECT_EQ(j["config"]["rope_style"], "half-split");
  EXPECT_EQ(j["config"]["tied_embeddings"], false);
  EXPECT_EQ(j["n_params"], m.n_params());
  EXPECT_TRUE(j["tokenizer"].is_null());
  ASSERT_EQ(j["tensors"].size(), 2u + 9u * c.n_layers + 1u);  // embed, 9 per layer, norm, lm_head
  EXPECT_EQ(j["tensors"].back()["name"], "lm_head.weight");
  EXPECT_EQ(j["tensors"].back()["shape"], nlohmann::json({c.vocab_size, c.dim}));
  EXPECT_EQ(j["tensors"].back()["dtype"], "F16");
  // Text form: succeeds and names the format.
  const RunResult t = run_command(lrc::test::lrc_binary() + " inspect --model " + dir);
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_NE(t.out.find("lm_head.weight"), std::string::npos);
  // A missing tokenizer that was asked for is an error naming it.
  const RunResult e = run_command(lrc::test::lrc_binary() + " inspect --model " + dir +
                                  " --tokenizer " + dir + "/nope.model 2>&1 >/dev/null");
  EXPECT_NE(e.exit_code, 0);
  EXPECT_NE(e.out.find(dir + "/nope.model: tokenizer file not found"), std::string::npos) << e.out;
  fs::remove_all(dir);
}
