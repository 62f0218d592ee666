#include "lrc/core/communicator.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "lrc/core/error.h"

namespace lrc {

void Communicator::all_reduce_sum_device(double*, size_t) const {
  throw Error(name() + ": all-reduce of device memory needs the NCCL communicator");
}

std::string Communicator::broadcast_string(const std::string& s, int root) const {
  std::vector<uint8_t> b(s.begin(), s.end());
  broadcast(b, root);
  return std::string(b.begin(), b.end());
}

void Communicator::barrier() const {
  double one = 1;
  all_reduce_sum(&one, 1);
}

namespace {

using Clock = std::chrono::steady_clock;

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_reduce_sum(double*, size_t) const override {}
  void broadcast(std::vector<uint8_t>&, int) const override {}
};

// Every message: what it is and how many bytes follow. All ranks call the collectives in the
// same order, so a header that differs from what the receiver expects means the ranks disagree
// (different options, a bug): one error naming both, not a hang or garbage.
enum class Op : uint32_t { Hello = 1, AllReduce = 2, Broadcast = 3 };
struct Header {
  uint32_t magic = 0x4c524343;  // "LRCC"
  uint32_t op = 0;
  uint64_t bytes = 0;
};
const char* op_name(uint32_t op) {
  switch (op) {
    case 1: return "hello";
    case 2: return "all-reduce";
    case 3: return "broadcast";
  }
  return "unknown";
}

// Rank 0 holds one socket per other rank (a star); the others one socket to rank 0. Rank 0
// sums and forwards, which keeps the order of additions fixed.
class SocketCommunicator final : public Communicator {
 public:
  SocketCommunicator(const std::string& address, int rank, int size, double timeout_s)
      : address_(address), rank_(rank), size_(size), fds_(static_cast<size_t>(size), -1) {
    if (size < 1 || rank < 0 || rank >= size)
      fail(address, "rank " + std::to_string(rank) + " of " + std::to_string(size) +
                        " is not a valid rank");
    if (size == 1) return;
    try {
      if (rank == 0)
        accept_all(timeout_s);
      else
        connect_root(timeout_s);
    } catch (...) {
      close_all();
      throw;
    }
  }
  ~SocketCommunicator() override {
    close_all();
    if (rank_ == 0 && unix_) ::unlink(unix_path_.c_str());
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override {
    return "local (" + std::to_string(size_) + " rank" + (size_ == 1 ? "" : "s") + ", " +
           address_ + ")";
  }

  void all_reduce_sum(double* data, size_t n) const override {
    if (size_ == 1) return;
    const auto t = Clock::now();
    const uint64_t bytes = n * sizeof(double);
    if (rank_ == 0) {
      std::vector<double> buf(std::min<size_t>(n, kChunk));
      for (int r = 1; r < size_; ++r) {  // rank order: ((x0 + x1) + x2) + ...
        expect(r, Op::AllReduce, bytes);
        for (size_t i0 = 0; i0 < n; i0 += kChunk) {
          const size_t m = std::min(kChunk, n - i0);
          recv_all(r, buf.data(), m * sizeof(double));
          for (size_t i = 0; i < m; ++i) data[i0 + i] += buf[i];
        }
      }
      for (int r = 1; r < size_; ++r) send_msg(r, Op::AllReduce, data, bytes);
    } else {
      send_msg(0, Op::AllReduce, data, bytes);
      expect(0, Op::AllReduce, bytes);
      recv_all(0, data, bytes);
    }
    traffic_.seconds += std::chrono::duration<double>(Clock::now() - t).count();
    traffic_.bytes += static_cast<double>(bytes);
  }

  void broadcast(std::vector<uint8_t>& b, int root) const override {
    if (size_ == 1) return;
    if (root < 0 || root >= size_) fail(name(), "broadcast from rank " + std::to_string(root));
    if (rank_ == root && root != 0) {  // the root hands it to rank 0, which sends it on
      send_msg(0, Op::Broadcast, b.data(), b.size());
      return;
    }
    if (rank_ == 0) {
      if (root != 0) b = recv_any_size(root);
      for (int r = 1; r < size_; ++r)
        if (r != root) send_msg(r, Op::Broadcast, b.data(), b.size());
    } else {
      b = recv_any_size(0);
    }
  }

 private:
  static constexpr size_t kChunk = size_t{1} << 20;  // doubles received and added at a time

  std::string peer(int r) const {
    return address_ + ": rank " + std::to_string(r);
  }

  void close_all() {
    for (int& fd : fds_)
      if (fd >= 0) {
        ::close(fd);
        fd = -1;
      }
  }

  [[noreturn]] void gone(int r, const std::string& why) const {
    fail(peer(r), why + " (that rank stopped: its own error, printed by it or by the launcher, "
                        "says why)");
  }

  void send_all(int r, const void* p, size_t bytes) const {
    const char* c = static_cast<const char*>(p);
    while (bytes > 0) {
      const ssize_t k = ::send(fds_[static_cast<size_t>(r)], c, std::min<size_t>(bytes, 1 << 26),
                               MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) gone(r, std::string("cannot send: ") + std::strerror(errno));
      c += k;
      bytes -= static_cast<size_t>(k);
    }
  }
  void recv_all(int r, void* p, size_t bytes) const {
    char* c = static_cast<char*>(p);
    while (bytes > 0) {
      const ssize_t k = ::recv(fds_[static_cast<size_t>(r)], c, std::min<size_t>(bytes, 1 << 26), 0);
      if (k < 0 && errno == EINTR) continue;
      if (k == 0) gone(r, "connection closed");
      if (k < 0) gone(r, std::string("cannot receive: ") + std::strerror(errno));
      c += k;
      bytes -= static_cast<size_t>(k);
    }
  }
  void send_msg(int r, Op op, const void* p, uint64_t bytes) const {
    Header h;
    h.op = static_cast<uint32_t>(op);
    h.bytes = bytes;
    send_all(r, &h, sizeof h);
    if (bytes) send_all(r, p, bytes);
  }
  Header recv_header(int r) const {
    Header h;
    recv_all(r, &h, sizeof h);
    if (h.magic != Header{}.magic) fail(peer(r), "sent something that is not an lrc message");
    return h;
  }
  void expect(int r, Op op, uint64_t bytes) const {
    const Header h = recv_header(r);
    if (h.op != static_cast<uint32_t>(op) || h.bytes != bytes)
      fail(peer(r), std::string("the ranks disagree: it sent a ") + op_name(h.op) + " of " +
                        std::to_string(h.bytes) + " bytes where rank " + std::to_string(rank_) +
                        " expected a " + op_name(static_cast<uint32_t>(op)) + " of " +
                        std::to_string(bytes) + " bytes (different options or inputs per rank?)");
  }
  std::vector<uint8_t> recv_any_size(int r) const {
    const Header h = recv_header(r);
    if (h.op != static_cast<uint32_t>(Op::Broadcast))
      fail(peer(r), std::string("the ranks disagree: it sent a ") + op_name(h.op) +
                        " where a broadcast was expected");
    std::vector<uint8_t> b(h.bytes);
    recv_all(r, b.data(), b.size());
    return b;
  }

  // "unix:/path" or "tcp:host:port" into a socket address.
  struct Where {
    int family = AF_UNIX;
    std::string path, host, port;
  };
  Where parse() const {
    Where w;
    if (address_.rfind("unix:", 0) == 0) {
      w.path = address_.substr(5);
      if (w.path.empty() || w.path.size() >= sizeof(sockaddr_un{}.sun_path))
        fail(address_, "a Unix socket path of 1 to 107 characters is needed");
      return w;
    }
    if (address_.rfind("tcp:", 0) == 0) {
      const size_t colon = address_.rfind(':');
      w.family = AF_INET;
      w.host = address_.substr(4, colon - 4);
      w.port = address_.substr(colon + 1);
      if (colon <= 4 || w.host.empty() || w.port.empty() ||
          w.port.find_first_not_of("0123456789") != std::string::npos)
        fail(address_, "expected tcp:HOST:PORT");
      return w;
    }
    fail(address_, "expected unix:PATH or tcp:HOST:PORT");
  }

  void accept_all(double timeout_s) {
    const Where w = parse();
    const int ls = ::socket(w.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) fail(address_, std::string("socket: ") + std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{ls};
    if (w.family == AF_UNIX) {
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, w.path.c_str(), sizeof(a.sun_path) - 1);
      ::unlink(w.path.c_str());
      if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        fail(address_, std::string("cannot listen: ") + std::strerror(errno));
      unix_ = true;
      unix_path_ = w.path;
    } else {
      const int one = 1;
      ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<uint16_t>(std::stoi(w.port)));
      if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        fail(address_, std::string("cannot listen on port ") + w.port + ": " +
                           std::strerror(errno));
    }
    if (::listen(ls, size_) != 0) fail(address_, std::string("listen: ") + std::strerror(errno));
    const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
    for (int joined = 1; joined < size_;) {
      const double left = std::chrono::duration<double>(until - Clock::now()).count();
      pollfd p{ls, POLLIN, 0};
      const int pr = left > 0 ? ::poll(&p, 1, static_cast<int>(left * 1000) + 1) : 0;
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0)
        fail(address_, std::to_string(joined - 1) + " of " + std::to_string(size_ - 1) +
                           " other ranks joined within " + std::to_string(int(timeout_s)) + " s");
      const int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      tune(fd);
      Header h;
      int32_t who[2] = {-1, -1};  // rank, size
      const ssize_t k = ::recv(fd, &h, sizeof h, MSG_WAITALL);
      const bool ok = k == sizeof h && h.magic == Header{}.magic &&
                      h.op == static_cast<uint32_t>(Op::Hello) && h.bytes == sizeof who &&
                      ::recv(fd, who, sizeof who, MSG_WAITALL) == sizeof who;
      if (!ok) {  // a stray connection (a port scanner, another program): ignore it
        ::close(fd);
        continue;
      }
      if (who[1] != size_ || who[0] < 1 || who[0] >= size_ || fds_[static_cast<size_t>(who[0])] >= 0) {
        ::close(fd);
        fail(address_, "a process joined as rank " + std::to_string(who[0]) + " of " +
                           std::to_string(who[1]) + ", but this run has " +
                           std::to_string(size_) + " ranks" +
                           (who[0] >= 1 && who[0] < size_ ? " and that rank already joined" : ""));
      }
      fds_[static_cast<size_t>(who[0])] = fd;
      ++joined;
    }
  }

  void connect_root(double timeout_s) {
    const Where w = parse();
    const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
    std::string last = "no attempt";
    for (;;) {
      int fd = -1;
      if (w.family == AF_UNIX) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, w.path.c_str(), sizeof(a.sun_path) - 1);
        if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          fds_[0] = fd;
          break;
        }
      } else {
        addrinfo hints{}, *res = nullptr;
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        const int gr = ::getaddrinfo(w.host.c_str(), w.port.c_str(), &hints, &res);
        if (gr != 0) {
          last = ::gai_strerror(gr);
        } else {
          fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
          const bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
          ::freeaddrinfo(res);
          if (ok) {
            fds_[0] = fd;
            break;
          }
        }
      }
      if (fd >= 0) {
        last = std::strerror(errno);
        ::close(fd);
      }
      if (Clock::now() >= until)
        fail(address_, "rank " + std::to_string(rank_) + " could not reach rank 0 within " +
                           std::to_string(int(timeout_s)) + " s (" + last + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    tune(fds_[0]);
    const int32_t who[2] = {rank_, size_};
    send_msg(0, Op::Hello, who, sizeof who);
  }

  static void tune(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on Unix
  }

  std::string address_;
  int rank_, size_;
  std::vector<int> fds_;
  bool unix_ = false;
  std::string unix_path_;
};

// The integer value of environment variable `name`, or -1 when unset.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end || x < 0 || x > 1 << 20) fail(name, std::string("'") + v + "' is not a rank count");
  return static_cast<int>(x);
}

}  // namespace

CommunicatorPtr single_communicator() { return std::make_shared<SingleCommunicator>(); }

CommunicatorPtr socket_communicator(const std::string& address, int rank, int size,
                                    double timeout_s) {
  return std::make_shared<SocketCommunicator>(address, rank, size, timeout_s);
}

CommunicatorPtr communicator_from_environment() {
  if (const char* a = std::getenv("LRC_COMM_ADDRESS"); a && *a) {
    const int rank = env_int("LRC_RANK"), size = env_int("LRC_WORLD_SIZE");
    if (rank < 0 || size < 1) fail("LRC_COMM_ADDRESS", "needs LRC_RANK and LRC_WORLD_SIZE");
    return socket_communicator(a, rank, size);
  }
  const int size = env_int("WORLD_SIZE");
  if (size <= 1) return nullptr;
  const int rank = env_int("RANK");
  const char* host = std::getenv("MASTER_ADDR");
  const int port = env_int("MASTER_PORT");
  if (rank < 0 || !host || !*host || port < 0)
    fail("WORLD_SIZE", "is " + std::to_string(size) + " but RANK, MASTER_ADDR or MASTER_PORT is "
                       "not set (a torchrun/Slurm launch sets all four)");
  return socket_communicator("tcp:" + std::string(host) + ":" + std::to_string(port + 1), rank,
                             size);
}

}  // namespace lrc
