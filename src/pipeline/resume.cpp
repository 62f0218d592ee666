#include "lrc/pipeline/resume.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "lrc/core/blas_info.h"
#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"
#include "lrc/pipeline/linear_record.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

constexpr char kMagic[8] = {'L', 'R', 'C', 'R', 'E', 'C', '1', '\n'};
constexpr const char* kFingerprint = "fingerprint.json";
constexpr const char* kAllocation = "allocation.json";

std::string numbered(const char* stem, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%05d.rec", stem, i);
  return buf;
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

struct Blob {
  const void* data;
  size_t bytes;
};
template <class T>
Blob blob(const std::vector<T>& v) {
  return {v.data(), v.size() * sizeof(T)};
}

// A record: magic, u64 length of the JSON, the JSON (meta + "blobs": byte counts), the blobs.
// Written to <path>.tmp and handed to the kernel (begin_record), then fsync'ed, renamed and the
// directory fsync'ed (commit_record): complete or absent.
struct PendingRecord {
  std::FILE* f = nullptr;
  fs::path tmp, path;
};

PendingRecord begin_record(const fs::path& path, nlohmann::json meta,
                           const std::vector<Blob>& blobs) {
  std::vector<uint64_t> sizes;
  for (const Blob& b : blobs) sizes.push_back(b.bytes);
  meta["blobs"] = sizes;
  const std::string js = meta.dump();
  const uint64_t jn = js.size();
  PendingRecord r{nullptr, path.string() + ".tmp", path};
  r.f = std::fopen(r.tmp.c_str(), "wb");
  if (!r.f)
    fail(r.tmp.string(), std::string("cannot write resume record: ") + std::strerror(errno));
  bool ok = std::fwrite(kMagic, 1, 8, r.f) == 8 && std::fwrite(&jn, 8, 1, r.f) == 1 &&
            std::fwrite(js.data(), 1, jn, r.f) == jn;
  for (const Blob& b : blobs)
    ok = ok && (b.bytes == 0 || std::fwrite(b.data, 1, b.bytes, r.f) == b.bytes);
  ok = ok && std::fflush(r.f) == 0;
  if (!ok) {
    std::fclose(r.f);
    std::error_code ec;
    fs::remove(r.tmp, ec);
    fail(r.tmp.string(), "write failed (resume record)");
  }
  return r;
}

void commit_record(PendingRecord& r) {
  const bool synced = ::fsync(::fileno(r.f)) == 0;
  const bool closed = std::fclose(r.f) == 0;
  r.f = nullptr;
  if (!synced || !closed) {
    std::error_code ec;
    fs::remove(r.tmp, ec);
    fail(r.tmp.string(), "write failed (resume record)");
  }
  fs::rename(r.tmp, r.path);
  fsync_path(r.path.parent_path(), true);
}

// Reads a record back: meta, then each blob into a typed vector (sizes checked).
class RecordReader {
 public:
  explicit RecordReader(const fs::path& path) : path_(path.string()) {
    f_ = std::fopen(path_.c_str(), "rb");
    if (!f_) fail(path_, "cannot read resume record");
    char magic[8];
    uint64_t jn = 0;
    if (std::fread(magic, 1, 8, f_) != 8 || std::memcmp(magic, kMagic, 8) != 0 ||
        std::fread(&jn, 8, 1, f_) != 1 || jn > (64u << 20))
      bad("not a resume record");
    std::string js(jn, '\0');
    if (std::fread(js.data(), 1, jn, f_) != jn) bad("truncated");
    try {
      meta = nlohmann::json::parse(js);
      sizes_ = meta.at("blobs").get<std::vector<uint64_t>>();
    } catch (const nlohmann::json::exception& e) {
      bad(std::string("damaged header: ") + e.what());
    }
    uint64_t total = 16 + jn;
    for (uint64_t s : sizes_) total += s;
    std::error_code ec;
    if (fs::file_size(path, ec) != total) bad("truncated");
  }
  ~RecordReader() { std::fclose(f_); }
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // The next blob into dst, which must be exactly `bytes` long.
  void next_into(void* dst, size_t bytes) {
    if (k_ >= sizes_.size() || sizes_[k_] != bytes) bad("blob " + std::to_string(k_) + " size");
    if (bytes && std::fread(dst, 1, bytes, f_) != bytes) bad("truncated");
    ++k_;
  }
  // The next blob into v (its byte count must be a multiple of sizeof(T)).
  template <class T>
  void next(std::vector<T>& v) {
    if (k_ >= sizes_.size() || sizes_[k_] % sizeof(T) != 0) bad("blob " + std::to_string(k_));
    v.resize(sizes_[k_] / sizeof(T));
    if (!v.empty() && std::fread(v.data(), 1, sizes_[k_], f_) != sizes_[k_]) bad("truncated");
    ++k_;
  }
  [[noreturn]] void bad(const std::string& what) const {
    fail(path_, "damaged resume record (" + what + "); run without --resume to start over");
  }

  nlohmann::json meta;

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::vector<uint64_t> sizes_;
  size_t k_ = 0;
};

void write_json_atomically(const fs::path& path, const nlohmann::json& j) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    f.flush();
    if (!f) fail(tmp.string(), "write failed (resume work area)");
  }
  fsync_path(tmp, false);
  fs::rename(tmp, path);
  fsync_path(path.parent_path(), true);
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream f(path);
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(),
         std::string("damaged (") + e.what() + "); run without --resume to start over");
  }
}

// "name": "size mtime_ns" of a file, or of each regular file of a directory.
nlohmann::json files_of(const std::string& path) {
  nlohmann::json j = nlohmann::json::object();
  if (path.empty()) return j;
  auto stamp = [](const fs::path& p) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    const auto t = fs::last_write_time(p, ec).time_since_epoch();
    return std::to_string(size) + " bytes, mtime " +
           std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(t).count());
  };
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) j[p.filename().string()] = stamp(p);
  } else {
    j[fs::path(path).filename().string()] = stamp(path);
  }
  return j;
}

// One readable line per leaf: "options.damp" -> "0.01".
void flatten(const nlohmann::json& j, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j.is_string() ? j.get<std::string>() : j.dump();
  }
}

std::string describe(const std::string& key) {
  auto starts = [&](const char* p) { return key.rfind(p, 0) == 0; };
  if (starts("options.")) return "the option '" + key.substr(8) + "'";
  if (starts("model.")) return "the model file '" + key.substr(6) + "'";
  if (starts("tokenizer.")) return "the tokenizer file '" + key.substr(10) + "'";
  if (starts("calibration.")) return "the calibration " + key.substr(12);
  if (key == "threads") return "the thread count (OMP_NUM_THREADS)";
  if (key == "blas_core") return "the OpenBLAS core type";
  if (key == "ranks") return "the number of ranks (--nproc)";
  if (key == "lrc_version") return "the lrc version";
  return "'" + key + "'";
}

}  // namespace

// One thread that makes the records durable in the order they were written (commit_record's
// fsync waits for the disk: seconds for a 7B model's hidden states, and behind any other
// writeback of the machine), while the pipeline goes on. A failure is kept and thrown by the
// next record_layer or flush; the destructor commits what is queued.
class QuantizeJournal::Committer {
 public:
  Committer() : thread_([this] { run(); }) {}
  ~Committer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (error_) {
      try {
        std::rethrow_exception(error_);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "\nwarning: resume record not saved: %s\n", e.what());
      }
    }
  }
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  void push(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
    cv_.notify_all();
  }
  // Waits until the queue is empty; rethrows the first failure.
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
    rethrow_locked();
  }
  void rethrow() {
    std::lock_guard<std::mutex> lock(mu_);
    rethrow_locked();
  }

 private:
  void rethrow_locked() {
    if (!error_) return;
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopped, everything committed
        job = std::move(jobs_.front());
        jobs_.pop_front();
        busy_ = true;
      }
      std::exception_ptr failed;
      try {
        job();
      } catch (...) {
        failed = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (failed && !error_) error_ = failed;
        busy_ = false;
      }
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once the members above exist
};

QuantizeJournal::~QuantizeJournal() = default;

void QuantizeJournal::flush() {
  if (committer_) committer_->wait();
}

nlohmann::json run_fingerprint(const std::string& model, const std::string& tokenizer,
                               const CalibrationSet& calib, const QuantizeOptions& opt) {
  nlohmann::json o = opt.to_json();
  o["batch_sequences"] = opt.batch_sequences;
  o["baseline_objective"] = opt.baseline_objective;
  o["compare_gptq"] = opt.compare_gptq;
  o["device"] = opt.device;
  return {{"lrc_version", LRC_VERSION},
          {"model", files_of(model)},
          {"tokenizer", files_of(tokenizer)},
          {"calibration",
           {{"sha256", calib.sha256}, {"n_seq", calib.n_seq}, {"seq_len", calib.seq_len}}},
          {"options", o},
          {"threads", omp_get_max_threads()},
          {"blas_core", blas_core_name()}};
}

std::string fingerprint_difference(const nlohmann::json& recorded, const nlohmann::json& now) {
  std::map<std::string, std::string> a, b;
  flatten(recorded, "", a);
  flatten(now, "", b);
  for (const auto& [k, v] : b) {
    const auto it = a.find(k);
    if (it == a.end()) return describe(k) + " is new (now " + v + ")";
    if (it->second != v)
      return describe(k) + " differs (recorded " + it->second + ", now " + v + ")";
  }
  for (const auto& [k, v] : a)
    if (!b.count(k)) return describe(k) + " is gone (recorded " + v + ")";
  return "";
}

bool work_area_has_layers(const std::string& partial) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(partial) / kResumeDirName, ec))
    if (e.path().filename().string().rfind("layer-", 0) == 0 &&
        e.path().extension() == ".rec")
      return true;
  return false;
}

QuantizeJournal::QuantizeJournal(const std::string& out, nlohmann::json fingerprint, bool resume,
                                 int rank) {
  const fs::path partial = out + ".partial";
  dir_ = (partial / kResumeDirName).string();
  if (rank > 0) dir_ = (fs::path(dir_) / ("rank-" + std::to_string(rank))).string();
  const fs::path fp_path = fs::path(dir_) / kFingerprint;
  std::error_code ec;
  bool fresh = !resume;
  if (resume && !fs::exists(fp_path, ec)) {
    std::fprintf(stderr, "resume: no earlier run in %s; starting from layer 0\n",
                 partial.c_str());
    fresh = true;
  }
  if (fresh) {
    if (fs::exists(partial, ec) && !fs::is_directory(partial, ec))
      fail(partial.string(), "exists and is not a directory");
    fs::remove_all(rank > 0 ? fs::path(dir_) : partial, ec);
    fs::create_directories(dir_, ec);
    if (ec) fail(out, "cannot create output directory: " + ec.message());
    write_json_atomically(fp_path, fingerprint);
    return;
  }
  const std::string diff = fingerprint_difference(read_json(fp_path), fingerprint);
  if (!diff.empty())
    fail(partial.string(), "cannot resume: " + diff + "; run without --resume to start over");
  // Leftovers of a write that a kill interrupted, and the checkpoint's own partial files (the
  // checkpoint is rewritten from its first byte).
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().extension() == ".tmp") fs::remove(e.path(), ec);
  // Finished: layers 0..n with the hidden states after n (the newest hidden record).
  int newest = -1;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    int n = -1;
    if (std::sscanf(name.c_str(), "hidden-%d.rec", &n) == 1 && name == numbered("hidden", n)) {
      newest = std::max(newest, n);
      hidden_.push_back(n);
    }
  }
  std::sort(hidden_.begin(), hidden_.end());
  int done = 0;
  while (done <= newest && fs::exists(fs::path(dir_) / numbered("layer", done), ec)) ++done;
  done_ = done == newest + 1 ? done : 0;  // a gap (never written so): start over
  newest_hidden_ = done_ - 1;
  std::fprintf(stderr, "resume: %d layer%s finished by an earlier run (%s)\n", done_,
               done_ == 1 ? "" : "s", partial.c_str());
}

void QuantizeJournal::record_layer(int i, const LlamaConfig& cfg, const LlamaLayer& L,
                                   const std::vector<LinearReport>& reports,
                                   const QuantizeReport::LayerTimes& times, bool hidden,
                                   std::vector<float> h, std::vector<float> hf) {
  nlohmann::json meta = {{"layer", i}, {"reports", nlohmann::json::array()}};
  std::vector<Blob> blobs = {blob(L.attn_norm), blob(L.ffn_norm), blob(L.q_norm),
                             blob(L.k_norm)};
  static const std::vector<uint8_t> no_codes;
  static const std::vector<float> none;
  for (const auto& t : layer_linears(cfg)) {
    const Linear& l = t.of(L);
    meta["linears"].push_back(linear_meta(l));
    blobs.push_back(blob(l.w));
    blobs.push_back(blob(l.bias));
    blobs.push_back(l.packed ? blob(l.packed->codes) : blob(no_codes));
    blobs.push_back(l.packed ? blob(l.packed->scales) : blob(none));
    blobs.push_back(l.packed ? blob(l.packed->zeros) : blob(none));
    blobs.push_back(blob(l.lr.u));
    blobs.push_back(blob(l.lr.v));
  }
  if (cfg.moe()) blobs.push_back(blob(L.router.w));  // MoE: the (16-bit, FP) router last
  for (const auto& r : reports) meta["reports"].push_back(report_meta(r));
  meta["times"] = {bits_of(times.seconds), bits_of(times.forward), bits_of(times.stats),
                   bits_of(times.solve),   bits_of(times.gptq),    bits_of(times.load)};
  if (!committer_) committer_ = std::make_unique<Committer>();
  // An earlier record's failure stops the run here; a hidden record waits for the one before.
  if (hidden)
    committer_->wait();
  else
    committer_->rethrow();
  // The layer's record is written now (into the page cache); the committer writes the hidden
  // states, then makes both durable in this order: the hidden record's data, the layer record
  // renamed, the hidden record renamed, the older hidden records removed (a layer's record
  // appears only once the states after it are complete).
  auto layer_rec = std::make_shared<PendingRecord>(
      begin_record(fs::path(dir_) / numbered("layer", i), meta, blobs));
  std::vector<fs::path> drop;
  std::shared_ptr<std::pair<std::vector<float>, std::vector<float>>> states;
  if (hidden) {
    states = std::make_shared<std::pair<std::vector<float>, std::vector<float>>>(std::move(h),
                                                                                 std::move(hf));
    last_hidden_ = std::chrono::steady_clock::now();
    // Only the newest keep_ hidden records stay (GBs each for a 7B model).
    hidden_.erase(std::remove_if(hidden_.begin(), hidden_.end(), [&](int j) { return j >= i; }),
                  hidden_.end());
    hidden_.push_back(i);
    while (static_cast<int>(hidden_.size()) > keep_) {
      drop.push_back(fs::path(dir_) / numbered("hidden", hidden_.front()));
      hidden_.erase(hidden_.begin());
    }
    newest_hidden_ = i;
    done_ = i + 1;
  }
  const fs::path hidden_path = fs::path(dir_) / numbered("hidden", i);
  committer_->push([layer_rec, states, hidden_path, drop, i]() {
    std::optional<PendingRecord> hr;
    std::exception_ptr first;
    if (states) {
      try {
        hr = begin_record(hidden_path, {{"layer", i}},
                          {blob(states->first), blob(states->second)});
      } catch (...) {
        first = std::current_exception();
      }
      states->first = {};  // the copy goes as soon as it is in the page cache
      states->second = {};
    }
    for (PendingRecord* r : {layer_rec.get(), hr ? &*hr : nullptr}) {
      if (!r) continue;
      try {
        commit_record(*r);  // every one committed or closed, even after a failure
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
    std::error_code ec;
    for (const fs::path& p : drop) fs::remove(p, ec);
  });
}

void QuantizeJournal::restore_to(int done) {
  if (done == done_) return;
  if (done > done_ || done < 0 ||
      (done > 0 && std::find(hidden_.begin(), hidden_.end(), done - 1) == hidden_.end()))
    fail(dir_, "cannot resume after layer " + std::to_string(done) +
                   " (this rank's records end elsewhere); run without --resume to start over");
  done_ = done;
  newest_hidden_ = done - 1;
}

bool QuantizeJournal::hidden_due(int i, int n_layers, size_t bytes) const {
  if (i >= n_layers - 1) return false;
  if (policy_.every > 0) return (i + 1) % policy_.every == 0;
  const std::chrono::duration<double> since_last = std::chrono::steady_clock::now() - last_hidden_;
  return bytes <= policy_.small_bytes || since_last.count() >= policy_.interval_s;
}

void QuantizeJournal::restore_layer(int i, const LlamaConfig& cfg, LlamaLayer& L,
                                    std::vector<LinearReport>& reports,
                                    QuantizeReport::LayerTimes& times) const {
  RecordReader r(fs::path(dir_) / numbered("layer", i));
  try {
    if (r.meta.at("layer").get<int>() != i) r.bad("layer number");
    r.next(L.attn_norm);
    r.next(L.ffn_norm);
    r.next(L.q_norm);
    r.next(L.k_norm);
    const auto& lins = r.meta.at("linears");
    const auto table = layer_linears(cfg);
    if (lins.size() != table.size()) r.bad("linear count");
    size_t k = 0;
    for (const auto& t : table) {
      const auto& m = lins.at(k++);
      Linear& l = t.of(L);
      l = Linear{};
      l.d_out = m.at("d_out").get<int>();
      l.d_in = m.at("d_in").get<int>();
      r.next(l.w);
      r.next(l.bias);
      PackedWeight p;
      r.next(p.codes);
      r.next(p.scales);
      r.next(p.zeros);
      r.next(l.lr.u);
      r.next(l.lr.v);
      apply_linear_meta(m, l, std::move(p), "resume record");
    }
    if (cfg.moe()) {
      L.router = Linear{};
      L.router.d_out = cfg.n_experts;
      L.router.d_in = cfg.dim;
      r.next(L.router.w);
    }
    for (const auto& j : r.meta.at("reports")) reports.push_back(report_from(j));
    const auto& t = r.meta.at("times");
    times = {double_of(t.at(0)), double_of(t.at(1)), double_of(t.at(2)), double_of(t.at(3)),
             double_of(t.at(4)), t.size() > 5 ? double_of(t.at(5)) : 0.0};  // (load: newer)
  } catch (const nlohmann::json::exception& e) {
    r.bad(e.what());
  }
}

void QuantizeJournal::restore_hidden(float* h, size_t nh, float* hf, size_t nhf) const {
  if (done_ == 0) return;
  RecordReader r(fs::path(dir_) / numbered("hidden", done_ - 1));
  r.next_into(h, nh * sizeof(float));
  r.next_into(hf, nhf * sizeof(float));
}

std::optional<nlohmann::json> QuantizeJournal::allocation() const {
  const fs::path p = fs::path(dir_) / kAllocation;
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  return read_json(p);
}

void QuantizeJournal::record_allocation(const nlohmann::json& a) {
  write_json_atomically(fs::path(dir_) / kAllocation, a);
}

}  // namespace lrc
