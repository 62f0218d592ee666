// The NCCL communicator (issue 30): all-reduces of device memory between the GPUs of the ranks
// (one process per GPU), through libnccl.so.2 opened at run time, so that the binary runs where
// NCCL is absent (the host path then carries the statistics). The ranks first meet through a
// bootstrap communicator (communicator.h: the socket one), which carries NCCL's unique id from
// rank 0 and every host-memory collective (broadcasts of solved linears, host arrays), so those
// keep its fixed order of additions. NCCL's own sums (ring or tree, chosen by NCCL for the
// topology) are deterministic for a fixed number of ranks on the same machine, not equal to the
// host's order.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <string>

#include "lrc/core/communicator.h"
#include "lrc/core/error.h"

namespace lrc {

namespace {

// The few NCCL entry points lrc calls, resolved from libnccl.so.2 once.
struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string error;  // why it could not be loaded, or ""

  static const NcclApi& get() {
    static const NcclApi api = load();
    return api;
  }

 private:
  static NcclApi load() {
    NcclApi a;
    void* h = ::dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = ::dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      a.error = std::string("cannot load libnccl.so.2 (") + (e ? e : "not found") + ")";
      return a;
    }
    auto sym = [&](auto& f, const char* name) {
      f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(::dlsym(h, name));
      if (!f && a.error.empty()) a.error = std::string("libnccl.so.2 has no ") + name;
    };
    sym(a.get_unique_id, "ncclGetUniqueId");
    sym(a.comm_init_rank, "ncclCommInitRank");
    sym(a.all_reduce, "ncclAllReduce");
    sym(a.comm_destroy, "ncclCommDestroy");
    sym(a.error_string, "ncclGetErrorString");
    return a;
  }
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(CommunicatorPtr bootstrap, int device)
      : boot_(std::move(bootstrap)), device_(device), api_(NcclApi::get()) {
    // Every rank must be able to go on, else none does (a rank alone in ncclCommInitRank would
    // wait forever): the bootstrap counts the ranks that can.
    std::string why = api_.error;
    if (why.empty() && cudaSetDevice(device_) != cudaSuccess)
      why = "cannot select GPU " + std::to_string(device_);
    if (why.empty() && cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess)
      why = "cannot create a stream on GPU " + std::to_string(device_);
    double ready = why.empty() ? 1 : 0;
    boot_->all_reduce_sum(&ready, 1);
    if (!why.empty()) fail("nccl", why);
    if (ready != boot_->size()) fail("nccl", "another rank cannot use NCCL (its log says why)");
    ncclUniqueId id;
    std::vector<uint8_t> b(sizeof id);
    if (boot_->rank() == 0) {
      nccl(api_.get_unique_id(&id), "ncclGetUniqueId");
      std::memcpy(b.data(), &id, sizeof id);
    }
    boot_->broadcast(b, 0);
    std::memcpy(&id, b.data(), sizeof id);
    nccl(api_.comm_init_rank(&comm_, boot_->size(), id, boot_->rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) api_.comm_destroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return boot_->rank(); }
  int size() const override { return boot_->size(); }
  std::string name() const override {
    return "nccl (" + std::to_string(size()) + " ranks, GPU " + std::to_string(device_) +
           "; host collectives " + boot_->name() + ")";
  }
  void all_reduce_sum(double* data, size_t n) const override {
    boot_->all_reduce_sum(data, n);
    traffic_ = boot_->traffic();
    traffic_.seconds += device_seconds_;
    traffic_.bytes += device_bytes_;
  }
  void broadcast(std::vector<uint8_t>& bytes, int root) const override {
    boot_->broadcast(bytes, root);
  }
  bool device_memory() const override { return true; }
  // data: device memory of this rank's GPU, every earlier write to it finished (the caller
  // synchronises its stream).
  void all_reduce_sum_device(double* data, size_t n) const override {
    const auto t = std::chrono::steady_clock::now();
    nccl(api_.all_reduce(data, data, n, ncclDouble, ncclSum, comm_, stream_), "ncclAllReduce");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (ncclAllReduce)");
    device_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    device_bytes_ += static_cast<double>(n * sizeof(double));
    traffic_ = boot_->traffic();
    traffic_.seconds += device_seconds_;
    traffic_.bytes += device_bytes_;
  }

 private:
  void check(cudaError_t e, const char* what) const {
    if (e != cudaSuccess) fail("nccl", std::string(what) + ": " + cudaGetErrorString(e));
  }
  void nccl(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess)
      fail("nccl", std::string(what) + ": " + (api_.error_string ? api_.error_string(r) : "?"));
  }

  CommunicatorPtr boot_;
  int device_;
  const NcclApi& api_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  mutable double device_seconds_ = 0, device_bytes_ = 0;
};

}  // namespace

CommunicatorPtr make_nccl_communicator_cuda(CommunicatorPtr bootstrap, int device) {
  return std::make_shared<NcclCommunicator>(std::move(bootstrap), device);
}

}  // namespace lrc
