// The local communicator (lrc/core/communicator.h, issue 30): ranks as threads of this process
// over a Unix socket (and once over TCP). All-reduce sums in rank order on every rank (the order
// is visible: 1e16 + 1 - 1e16 is 0 that way and 1 another way), broadcast from any root,
// ranks that disagree about a collective and a rank that goes away are errors naming them.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "lrc/core/communicator.h"
#include "lrc/core/error.h"

namespace {

std::string socket_address(const std::string& tag) {
  return "unix:" + (std::filesystem::temp_directory_path() /
                    ("lrc-comm-" + tag + "-" + std::to_string(::getpid()) + ".sock"))
                       .string();
}

// Runs body(comm) on `size` ranks, each a thread with its own communicator; returns each rank's
// error message ("" when it returned normally).
std::vector<std::string> run_ranks(const std::string& address, int size,
                                   const std::function<void(lrc::Communicator&)>& body) {
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> ts;
  for (int r = 0; r < size; ++r)
    ts.emplace_back([&, r] {
      try {
        const lrc::CommunicatorPtr c = lrc::socket_communicator(address, r, size, 20);
        body(*c);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  return errors;
}

TEST(Communicator, AllReduceSumsInRankOrderOnEveryRank) {
  const int size = 3;
  std::vector<std::vector<double>> got(size);
  const auto errors = run_ranks(socket_address("sum"), size, [&](lrc::Communicator& c) {
    EXPECT_EQ(c.size(), size);
    // Element 0: 1e16, 1, -1e16 from ranks 0, 1, 2: ((1e16 + 1) - 1e16) = 0 in rank order.
    // Elements 1..: enough to need several of the receiver's chunks.
    std::vector<double> v((size_t{1} << 20) + 5);
    const double first[] = {1e16, 1.0, -1e16};
    v[0] = first[c.rank()];
    for (size_t i = 1; i < v.size(); ++i) v[i] = static_cast<double>(i) * (c.rank() + 1);
    c.all_reduce_sum(v.data(), v.size());
    got[static_cast<size_t>(c.rank())] = v;
    EXPECT_DOUBLE_EQ(c.traffic().bytes, static_cast<double>(v.size() * sizeof(double)));
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  for (int r = 0; r < size; ++r) {
    ASSERT_EQ(got[r].size(), (size_t{1} << 20) + 5);
    EXPECT_EQ(got[r][0], 0.0) << "rank " << r << ": not ((x0 + x1) + x2)";
    EXPECT_EQ(got[r][12345], 12345.0 * 6);
    EXPECT_EQ(got[r].back(), static_cast<double>(got[r].size() - 1) * 6);
  }
}

TEST(Communicator, BroadcastFromEveryRoot) {
  const int size = 3;
  const auto errors = run_ranks(socket_address("bcast"), size, [&](lrc::Communicator& c) {
    for (int root = 0; root < size; ++root) {
      std::vector<uint8_t> b;
      if (c.rank() == root) b.assign(static_cast<size_t>(1000 + root), static_cast<uint8_t>(root + 7));
      c.broadcast(b, root);
      ASSERT_EQ(b.size(), static_cast<size_t>(1000 + root)) << "rank " << c.rank();
      EXPECT_EQ(b.back(), root + 7);
    }
    EXPECT_EQ(c.broadcast_string(c.rank() == 2 ? "from two" : "", 2), "from two");
    std::vector<uint8_t> empty;  // zero bytes is a message too
    c.broadcast(empty, 1);
    EXPECT_TRUE(empty.empty());
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(Communicator, RanksThatDisagreeAreAnErrorNotAHang) {
  const auto errors = run_ranks(socket_address("disagree"), 2, [&](lrc::Communicator& c) {
    std::vector<double> v(c.rank() == 0 ? 4 : 3, 1.0);  // rank 1 sends 3 where rank 0 wants 4
    c.all_reduce_sum(v.data(), v.size());
  });
  EXPECT_NE(errors[0].find("the ranks disagree"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("rank 1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1], "") << "rank 1 must not wait forever once rank 0 gave up";
}

TEST(Communicator, ARankThatGoesAwayIsNamed) {
  const auto errors = run_ranks(socket_address("gone"), 3, [&](lrc::Communicator& c) {
    if (c.rank() == 2) return;  // its communicator closes: it stopped
    std::vector<double> v(8, 1.0);
    c.all_reduce_sum(v.data(), v.size());
  });
  EXPECT_NE(errors[0].find("rank 2"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("connection closed"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1], "");
  EXPECT_EQ(errors[2], "");
}

TEST(Communicator, TcpAddress) {
  // A free port: bind port 0, read it back, release it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  const auto errors = run_ranks("tcp:127.0.0.1:" + std::to_string(port), 2, [&](lrc::Communicator& c) {
    double x = c.rank() + 1.0;
    c.all_reduce_sum(&x, 1);
    EXPECT_EQ(x, 3.0);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(Communicator, BadAddressesAndRanks) {
  EXPECT_THROW(lrc::socket_communicator("pipe:/x", 0, 2, 1), lrc::Error);
  EXPECT_THROW(lrc::socket_communicator("tcp:host", 1, 2, 1), lrc::Error);
  EXPECT_THROW(lrc::socket_communicator(socket_address("bad"), 2, 2, 1), lrc::Error);
  // Rank 0 alone: the other rank never joins.
  try {
    lrc::socket_communicator(socket_address("alone"), 0, 2, 0.3);
    FAIL() << "no error";
  } catch (const lrc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("0 of 1 other ranks joined"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(lrc::single_communicator()->size(), 1);
}

}  // namespace
