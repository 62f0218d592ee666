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
