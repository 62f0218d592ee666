// Communicator: the collectives that spread one quantization over several processes (ranks),
// one per GPU or one per group of CPU cores (issue 30, docs/design.md "Several ranks").
//
//   all_reduce_sum  every rank's n doubles summed element-wise, the total on every rank
//   broadcast       the root's bytes on every rank
//
// Two implementations: SocketCommunicator (below: processes on the CPU over Unix-domain or TCP
// sockets, the path CI runs) and NCCL (lrc/quant/cuda/nccl_communicator.h: device memory, one
// process per GPU, bootstrapped through a SocketCommunicator). Rank r of a run is numbered the
// same way in both; rank 0 writes the checkpoint.
//
// Determinism: SocketCommunicator sums at rank 0 in rank order, ((x0 + x1) + x2) + ..., so a
// run is byte-identical for a fixed number of ranks; against one rank the float64 statistics
// differ in the order of their additions only (docs/results.md, issue 30).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lrc {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "local (2 ranks)", "nccl (4 ranks)"
  // data [n] (host memory): every rank's values summed, the total on every rank.
  virtual void all_reduce_sum(double* data, size_t n) const = 0;
  // bytes: the root's on entry; on return every rank holds a copy (resized).
  virtual void broadcast(std::vector<uint8_t>& bytes, int root) const = 0;
  // Device memory (NCCL): data [n] doubles in the memory of this rank's GPU.
  virtual bool device_memory() const { return false; }
  virtual void all_reduce_sum_device(double* data, size_t n) const;  // fails unless overridden
  // Seconds and bytes spent in all_reduce_sum(_device) so far (the per-layer report).
  struct Traffic {
    double seconds = 0;
    double bytes = 0;  // the payload of each all-reduce (n * 8), summed
  };
  const Traffic& traffic() const { return traffic_; }

  // Convenience: a string from the root to every rank (the root does not wait for them).
  std::string broadcast_string(const std::string& s, int root) const;
  // Returns on every rank once every rank has called it (an all-reduce of one number).
  void barrier() const;

 protected:
  mutable Traffic traffic_;
};

using CommunicatorPtr = std::shared_ptr<Communicator>;

// One rank: every collective returns its input.
CommunicatorPtr single_communicator();

// Where the ranks of a run meet: "unix:/path/to/socket" (one host) or "tcp:host:port" (rank 0
// listens on port; the others connect to host). Rank 0 accepts size - 1 connections, each rank
// says its number first; a rank connects for up to timeout_s seconds (the others may start
// later). A rank that goes away is an error naming it on every other rank's next collective.
CommunicatorPtr socket_communicator(const std::string& address, int rank, int size,
                                    double timeout_s = 120);

// The ranks of a launcher's environment: LRC_RANK / LRC_WORLD_SIZE / LRC_COMM_ADDRESS
// (what `lrc quantize --nproc N` sets for its children), else RANK / WORLD_SIZE /
// MASTER_ADDR / MASTER_PORT (torchrun; Slurm through it), a port one above MASTER_PORT so that
// a torchrun store on MASTER_PORT is left alone. Null when none is set (a single run).
CommunicatorPtr communicator_from_environment();

}  // namespace lrc
