// Resumable quantization (issue 27, acceptance 1) and determinism: `lrc quantize` killed with
// SIGKILL at random moments (before the first layer, between layers, in the middle of a layer or
// of a record's write), then `--resume`, gives the checkpoint of an uninterrupted run byte for
// byte (model.safetensors; lrc_config.json but for its wall-clock fields); a resume whose option
// or calibration file changed fails with one error naming what differs and leaves the work
// intact. The kill points come from a random seed printed on failure (LRC_RESUME_SEED replays).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/paths.h"
#include "support/random_calibration.h"
#include "support/run_command.h"

namespace fs = std::filesystem;
using lrc::test::read_file;

namespace {

// lrc_config.json without what a clock decides.
nlohmann::json config_without_times(const fs::path& dir) {
  nlohmann::json j = nlohmann::json::parse(read_file(dir / "lrc_config.json"));
  j.erase("quantize_seconds");
  if (j.contains("rank_allocation")) j["rank_allocation"].erase("probe_seconds");
  return j;
}

void expect_same_checkpoint(const fs::path& want, const fs::path& got, const std::string& what) {
  ASSERT_TRUE(fs::exists(got / "model.safetensors")) << what;
  EXPECT_TRUE(read_file(want / "model.safetensors") == read_file(got / "model.safetensors"))
      << what << ": model.safetensors differs";
  EXPECT_EQ(config_without_times(want), config_without_times(got)) << what;
  EXPECT_FALSE(fs::exists(got / "resume")) << what << ": the work area was left in the output";
  EXPECT_FALSE(fs::exists(got.string() + ".partial")) << what;
}

// OMP_NUM_THREADS of the runs below.
int g_threads = 1;

// `lrc quantize <args> --out <out>` in a child process (g_threads threads, output to a log),
// for killing: returns its pid.
pid_t spawn_quantize(const std::vector<std::string>& args, const std::string& log) {
  const std::string threads = std::to_string(g_threads);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("OMP_NUM_THREADS", threads.c_str(), 1);
    std::FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      ::dup2(::fileno(f), 1);
      ::dup2(::fileno(f), 2);
    }
    std::vector<char*> argv;
    std::string bin = lrc::test::lrc_binary();
    argv.push_back(bin.data());
    std::vector<std::string> a = args;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += " '" + a + "'";
  return s;
}

lrc::test::RunResult run_quantize(const std::vector<std::string>& args) {
  return lrc::test::run_command("OMP_NUM_THREADS=" + std::to_string(g_threads) + " " +
                                lrc::test::lrc_binary() + join(args) + " 2>&1");
}

// Layers finished in the work area: those up to the newest hidden-state record (resume.h).
int layers_recorded(const fs::path& work) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(work, ec)) {
    int i = -1;
    if (std::sscanf(e.path().filename().c_str(), "hidden-%d.rec", &i) == 1 &&
        e.path().extension() == ".rec")
      n = std::max(n, i + 1);
  }
  return n;
}

// Starts `args`, waits until `layers` layer records exist (0: not at all), sleeps delay_ms and
// kills it with SIGKILL. Returns the layers recorded when it died, or -1 if it finished first.
int kill_at(const std::vector<std::string>& args, const fs::path& out, int layers, int delay_ms,
            const std::string& log) {
  const pid_t pid = spawn_quantize(args, log);
  const fs::path work = fs::path(out.string() + ".partial") / "resume";
  int status = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (layers > 0 && layers_recorded(work) < layers) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return -1;
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(120)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  if (::waitpid(pid, &status, WNOHANG) == pid) return -1;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return layers_recorded(work);
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = lrc::test::temp_dir("resume");
    model = lrc::test::default_model_dir();
    calib = lrc::test::shared("data/debtext-calib.txt");
    if (!fs::exists(model) || !fs::exists(calib)) GTEST_SKIP() << "no " << model;
    const char* s = std::getenv("LRC_RESUME_SEED");
    seed = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir);
  }
  std::vector<std::string> args(const std::string& out, const std::string& cal,
                                const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {"quantize", "--model", model, "--calib", cal, "--nsamples", "8",
                                  "--seq", "128", "--out", out};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // An uninterrupted run (returned: its directory), then `kills` runs each killed at a random
  // point and resumed, each compared with it; `threads` threads each.
  std::string kill_and_resume(const std::string& tag, const std::vector<std::string>& extra,
                              int kills, int threads = 1) {
    g_threads = threads;
    SCOPED_TRACE("seed " + std::to_string(seed) + " (LRC_RESUME_SEED replays it)");
    const std::string base = dir + "/" + tag + "-base";
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_quantize(args(base, calib, extra));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    if (r.exit_code != 0) return base;
    const double full_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::mt19937_64 rng(seed + std::hash<std::string>{}(tag));
    const int n_layers = 6;
    for (int k = 0; k < kills; ++k) {
      const std::string out = dir + "/" + tag + "-" + std::to_string(k);
      // The layer to wait for (0 = from the start), then up to about one layer's time more;
      // if the run finished before the kill, another point (a shorter delay).
      int layers = 0, delay = 0, died = -1;
      for (int attempt = 0; attempt < 4 && died < 0; ++attempt) {
        fs::remove_all(out);
        layers = static_cast<int>(rng() % n_layers);
        delay = static_cast<int>(rng() % static_cast<uint64_t>(full_ms / (2 * n_layers) + 1)) >>
                attempt;
        died = kill_at(args(out, calib, extra), out, layers, delay, out + ".log");
      }
      EXPECT_GE(died, 0) << "every run finished before its kill";
      const std::string where = tag + " run " + std::to_string(k) + ": waited for " +
                                std::to_string(layers) + " layers + " + std::to_string(delay) +
                                " ms; killed with " + std::to_string(died) + " finished";
      SCOPED_TRACE(where);
      std::printf("%s\n", where.c_str());
      const auto rr = run_quantize(args(out, calib, [&] {
        auto e = extra;
        e.push_back("--resume");
        return e;
      }()));
      EXPECT_EQ(rr.exit_code, 0) << rr.out;
      if (died > 0) {
        EXPECT_NE(rr.out.find("resume: " + std::to_string(died) + " layer"), std::string::npos)
            << rr.out;
      }
      expect_same_checkpoint(base, out, tag + " run " + std::to_string(k));
    }
    return base;
  }

  std::string dir, model, calib;
  uint64_t seed = 0;
};

// Two kills with one thread, one with two (where OpenMP and OpenBLAS may split sums). The two
// thread counts' uninterrupted runs also show the determinism of docs/design.md: at this size
// the same bytes on AVX-512 machines (the sums there stay below the parallel thresholds), else
// a perplexity within W4A4's chaos (below).
TEST_F(Resume, KilledAtRandomPointsResumesByteIdentical) {
  const std::vector<std::string> lrc = {"--method", "lrc", "--rank", "0.1"};
  const std::string one = kill_and_resume("lrc", lrc, 2, 1);
  const std::string two = kill_and_resume("lrc2", lrc, 1, 2);
  if (read_file(one + "/model.safetensors") == read_file(two + "/model.safetensors")) {
    std::printf("1 and 2 threads: the same checkpoint bytes\n");
    return;
  }
  auto ppl = [&](const std::string& ckpt) {
    const auto r = lrc::test::run_command(
        "OMP_NUM_THREADS=1 " + lrc::test::lrc_binary() + " eval --model " + ckpt + " --data " +
        lrc::test::shared("data/debtext-valid.txt") + " --seq 128 --max-chunks 16 --json");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return nlohmann::json::parse(r.out).at("ppl").get<double>();
  };
  const double p1 = ppl(one), p2 = ppl(two);
  std::printf("ppl: 1 thread %.6f, 2 threads %.6f (%+.3f%%)\n", p1, p2, 100 * (p2 / p1 - 1));
  // On an AMD EPYC with AVX2 only, 1 and 2 threads part from layer 0's o_proj on (the
  // attention's products, summed in another order) and W4A4 chaos on 8 x 128 calibration
  // tokens moved the perplexity by 4.5%; a broken parallel path moves it by far more.
  EXPECT_LT(std::fabs(p2 / p1 - 1), 0.08) << p1 << " vs " << p2;
}

// Error-driven ranks come from a probe pass whose decision is recorded (allocation.json).
TEST_F(Resume, RankAllocation) {
  kill_and_resume("alloc", {"--method", "lrc", "--rank", "0.1", "--rank-alloc", "error"}, 1);
}

// FP targets keep a second array of hidden states (hf); the searched clips live in the layer
// records. (GPTQ: the cheapest method with statistics.)
TEST_F(Resume, FpTargetsClipSearch) {
  kill_and_resume("fp", {"--method", "gptq", "--target", "fp", "--a-clip", "search"}, 1);
}

// Hidden states recorded after every second layer only (--resume-every 2: after layers 1 and 3
// of the six, never after the last): no record for the other layers is ever written, a kill
// resumes from the newest one (the layer records after it are redone), and the checkpoint is
// the uninterrupted run's; a bad value is a clear error. (Every layer: the tests above, the default for small states.)
TEST_F(Resume, HiddenStatesEverySecondLayer) {
  const std::vector<std::string> every2 = {"--method", "gptq", "--resume-every", "2"};
  const std::string out = dir + "/sparse";
  const int died = kill_at(args(out, calib, every2), out, 4, 0, out + ".log");
  ASSERT_EQ(died, 4);  // waited for the record after layer 3, killed at once
  std::vector<std::string> hidden;
  for (const auto& e : fs::directory_iterator(fs::path(out + ".partial") / "resume"))
    if (e.path().filename().string().rfind("hidden-", 0) == 0)
      hidden.push_back(e.path().filename().string());
  // (hidden-00001 may still be there: the older record goes after the new one is complete.)
  std::sort(hidden.begin(), hidden.end());
  if (hidden.size() == 2) {
    EXPECT_EQ(hidden[0], "hidden-00001.rec");
  }
  ASSERT_FALSE(hidden.empty());
  EXPECT_EQ(hidden.back(), "hidden-00003.rec");
  EXPECT_LE(hidden.size(), 2u);
  kill_and_resume("sparse", every2, 1);
  const auto r = run_quantize(args(dir + "/bad", calib, {"--method", "rtn", "--resume-every", "0"}));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("error: --resume-every: '0' is not a positive number of layers or 'auto'"),
            std::string::npos)
      << r.out;
}

// (GPTQ with the activation clip searched: the clips chosen live in the layer records.)
TEST_F(Resume, ChangedOptionOrCalibrationIsAClearError) {
  const std::string cal = dir + "/calib.txt";
  fs::copy_file(calib, cal);
  const std::string out = dir + "/q";
  const std::vector<std::string> extra = {"--method", "gptq", "--a-clip", "search"};
  const int died = kill_at(args(out, cal, extra), out, 2, 0, out + ".log");
  ASSERT_GE(died, 2);
  auto with = [&](std::vector<std::string> e, const std::string& c) {
    e.push_back("--resume");
    return run_quantize(args(out, c, e));
  };
  auto last_error = [](const std::string& s) {
    const size_t at = s.rfind("error: ");
    return at == std::string::npos ? std::string() : s.substr(at);
  };
  // A changed option.
  auto r = with({"--method", "gptq", "--a-clip", "search", "--damp", "0.02"}, cal);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  std::string e = last_error(r.out);
  EXPECT_NE(e.find("cannot resume: the option 'damp' differs (recorded 0.01, now 0.02)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("error: "), r.out.rfind("error: ")) << "one error line: " << r.out;
  // A changed calibration file (same size in sequences, other text).
  {
    std::ofstream f(cal, std::ios::app);
    f << "one more line of calibration text\n";
  }
  r = with(extra, cal);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  e = last_error(r.out);
  EXPECT_NE(e.find("cannot resume: the calibration sha256 differs"), std::string::npos) << r.out;
  // Neither touched the work area: with the original file back, the resume completes.
  fs::remove(cal);
  fs::copy_file(calib, cal);
  r = with(extra, cal);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("resume: " + std::to_string(died) + " layer"), std::string::npos) << r.out;
  // Without --resume an existing .partial is replaced: a fresh run.
  const int died2 = kill_at(args(out + "2", cal, extra), out + "2", 1, 0, out + "2.log");
  ASSERT_GE(died2, 1);
  r = run_quantize(args(out + "2", cal, extra));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("resume:"), std::string::npos) << r.out;
  expect_same_checkpoint(out, out + "2", "fresh run over a stale .partial");
}

}  // namespace
