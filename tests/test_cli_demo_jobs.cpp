// `lrc demo --jobs`: rows run in child processes give the same numbers as the same rows run one
// after another with the same thread count (bit for bit: a row depends on its own threads
// only), in the same order; a row that fails stops the demo with its error and exit code != 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "support/paths.h"
#include "support/run_command.h"

namespace {

using lrc::test::run_command;
using lrc::test::RunResult;

// A small table on the real default model: 4 calibration and 2 evaluation chunks of 128.
std::string demo_args() {
  using lrc::test::shared;
  return " demo --model " + lrc::test::default_model_dir() + " --data " +
         shared("data/debtext-valid.txt") + " --calib " + shared("data/debtext-calib.txt") +
         " --seq 128 --max-chunks 2 --nsamples 4 --methods rtn,gptq,lrc --ranks 0.1 --json";
}

}  // namespace

TEST(CliDemoJobs, ChildProcessesReproduceSequentialRows) {
  const std::string bin = lrc::test::lrc_binary();
  // Two lanes of one thread each vs. one thread, one row after another.
  const RunResult par =
      run_command("OMP_NUM_THREADS=2 " + bin + demo_args() + " --jobs 2 2>/dev/null");
  const RunResult seq =
      run_command("OMP_NUM_THREADS=1 " + bin + demo_args() + " --jobs 1 2>/dev/null");
  ASSERT_EQ(par.exit_code, 0) << par.out;
  ASSERT_EQ(seq.exit_code, 0) << seq.out;
  const auto a = nlohmann::json::parse(par.out)["rows"];
  const auto b = nlohmann::json::parse(seq.out)["rows"];
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(a.size(), b.size());
  const char* methods[] = {"fp", "rtn", "gptq", "lrc"};
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["method"], methods[i]);
    EXPECT_EQ(a[i]["method"], b[i]["method"]);
    EXPECT_EQ(a[i]["ppl"].get<double>(), b[i]["ppl"].get<double>()) << a[i]["method"];
    EXPECT_EQ(a[i]["bits_per_weight"].get<double>(), b[i]["bits_per_weight"].get<double>());
    EXPECT_EQ(a[i]["gap_closed"], b[i]["gap_closed"]) << a[i]["method"];
  }
  EXPECT_LT(a[0]["ppl"].get<double>(), a[2]["ppl"].get<double>());  // FP beats W4A4 GPTQ
}

TEST(CliDemoJobs, FailingRowStopsDemoWithItsError) {
  const std::string missing = "/nonexistent/lrc-demo-calib.txt";
  const RunResult r = run_command(
      "OMP_NUM_THREADS=2 " + lrc::test::lrc_binary() + " demo --model " +
      lrc::test::default_model_dir() + " --data " + lrc::test::shared("data/debtext-valid.txt") +
      " --calib " + missing + " --methods rtn,gptq --seq 64 --max-chunks 1 --jobs 2 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(missing), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("{\"rows\""), std::string::npos) << "no table after a failure: " << r.out;
}

// The JSON names the BLAS kernel set the numbers came from (OPENBLAS_CORETYPE forces one).
TEST(CliDemoJobs, JsonNamesBlasKernelSet) {
  const std::string args = " demo --model " + lrc::test::default_model_dir() + " --data " +
                           lrc::test::shared("data/debtext-valid.txt") +
                           " --no-fp --methods rtn --seq 64 --max-chunks 1 --jobs 1 --json";
  for (const std::string core : {"Prescott", "Haswell"}) {
    if (core == "Haswell" && !__builtin_cpu_supports("avx2")) continue;
    const RunResult r = run_command("OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=" + core + " " +
                                    lrc::test::lrc_binary() + args + " 2>/dev/null");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out)["blas_core"], core);
  }
}

// --experiment (the paper's other tables, issue 32): a preset's row equals the same row run
// by hand, `lrc quantize` with the preset's setting then `lrc eval` on the checkpoint, bit for
// bit (one thread each); and a preset refuses row flags that it would override.
TEST(CliDemoExperiment, PresetRowEqualsQuantizeThenEval) {
  using lrc::test::shared;
  const std::string bin = "OMP_NUM_THREADS=1 " + lrc::test::lrc_binary();
  const std::string model = lrc::test::default_model_dir();
  const RunResult demo = run_command(
      bin + " demo --model " + model + " --data " + shared("data/debtext-valid.txt") +
      " --calib " + shared("data/debtext-calib.txt") +
      " --seq 128 --max-chunks 2 --nsamples 4 --experiment table2 --no-fp --jobs 1 --json "
      "2>/dev/null");
  ASSERT_EQ(demo.exit_code, 0) << demo.out;
  const auto j = nlohmann::json::parse(demo.out);
  EXPECT_EQ(j["experiment"], "table2");
  const auto& rows = j["rows"];
  ASSERT_EQ(rows.size(), 4u);  // rtn gptq svd:0.1 lrc:0.1
  const auto& lrc_row = rows[3];
  ASSERT_EQ(lrc_row["method"], "lrc");
  EXPECT_NE(lrc_row["settings"].get<std::string>().find("ag128"), std::string::npos);
  // Size: the rows differ only in their linears, 6 x (2·384² + 2·384·128 + 3·384·1024) weights
  // at each row's bits per weight (the rest, with the LM head QuaRot unties, in fp16).
  const double linears = 6.0 * (2 * 384 * 384 + 2 * 384 * 128 + 3 * 384 * 1024);
  EXPECT_NEAR(lrc_row["size_mb"].get<double>() - rows[0]["size_mb"].get<double>(),
              (lrc_row["bits_per_weight"].get<double>() - rows[0]["bits_per_weight"].get<double>()) *
                  linears / 8 / 1e6,
              1e-9);

  const std::string dir = lrc::test::temp_dir("demo-experiment");
  const RunResult q = run_command(
      bin + " quantize --model " + model + " --calib " + shared("data/debtext-calib.txt") +
      " --nsamples 4 --seq 128 --method lrc --rank 0.1 --a-groupsize 128 --out " + dir +
      "/q 2>&1");
  ASSERT_EQ(q.exit_code, 0) << q.out;
  const RunResult e = run_command(bin + " eval --model " + dir + "/q --data " +
                                  shared("data/debtext-valid.txt") +
                                  " --seq 128 --max-chunks 2 --json 2>/dev/null");
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(e.out)["ppl"].get<double>(), lrc_row["ppl"].get<double>());

  const RunResult clash =
      run_command(bin + " demo --model " + model + " --experiment table1 --ranks 0.2 2>&1");
  EXPECT_NE(clash.exit_code, 0);
  EXPECT_NE(clash.out.find("--experiment table1 sets the rows"), std::string::npos) << clash.out;
}
