// Which Hadamard orders lrc can build, and the matrices themselves (see lrc/rotate/hadamard.h
// for the list of constructions and the order they are tried in).
//
// A "plan" records the construction chosen for each order; plans and the matrices of the
// orders that are not built by doubling (the base orders) are cached, so each construction —
// including the Goethals–Seidel search — runs once per process.
#include "lrc/rotate/hadamard.h"

#include <map>
#include <memory>
#include <mutex>

#include "lrc/core/error.h"
#include "rotate/galois_field.h"
#include "rotate/hadamard_constructions.h"

namespace lrc {

namespace {

enum class Method { None, One, Sylvester, Paley1, Paley2, GoethalsSeidel, Kronecker };

struct Plan {
  Method method = Method::None;
  int a = 0, b = 0;  // Sylvester: a = n/2; Paley: a = q; Goethals–Seidel: a = t; Kronecker: a·b
  std::shared_ptr<const std::vector<int8_t>> matrix;  // base orders: built on first use
};

std::mutex g_mutex;
std::map<int, Plan> g_plans;  // guarded by g_mutex

int prime_power_or_zero(int q) {  // q if q is a prime power, else 0
  int p = 0, k = 0;
  return detail::is_prime_power(q, &p, &k) ? q : 0;
}

// The matrix of a plan that is not Sylvester doubling (and not None).
std::vector<int8_t> build_base(int n, const Plan& plan);

Plan& plan_for(int n);  // requires g_mutex held

Plan choose_plan(int n) {
  Plan p;
  if (n == 1) {
    p.method = Method::One;
    return p;
  }
  if (n == 2 || (n % 4 == 0 && plan_for(n / 2).method != Method::None)) {
    p.method = Method::Sylvester;
    p.a = n / 2;
    return p;
  }
  if (n % 4 != 0) return p;
  if (int q = prime_power_or_zero(n - 1); q && q % 4 == 3) {
    p.method = Method::Paley1;
    p.a = q;
    return p;
  }
  if (int q = prime_power_or_zero(n / 2 - 1); q && q % 4 == 1) {
    p.method = Method::Paley2;
    p.a = q;
    return p;
  }
  if ((n / 4) % 2 == 1) {
    if (auto seq = detail::find_goethals_seidel_sequences(n / 4)) {
      p.method = Method::GoethalsSeidel;
      p.a = n / 4;
      p.matrix = std::make_shared<const std::vector<int8_t>>(detail::goethals_seidel_array(*seq));
      return p;
    }
  }
  for (int a = 4; a * a <= n; a += 4) {
    if (n % a != 0 || (n / a) % 4 != 0) continue;
    if (plan_for(a).method != Method::None && plan_for(n / a).method != Method::None) {
      p.method = Method::Kronecker;
      p.a = a;
      p.b = n / a;
      return p;
    }
  }
  return p;
}

Plan& plan_for(int n) {
  auto it = g_plans.find(n);
  if (it != g_plans.end()) return it->second;
  Plan p = choose_plan(n);
  if (p.matrix) {  // a search result is checked once: H·Hᵀ = n·I exactly (Paley is a theorem)
    const auto& h = *p.matrix;
    for (int i = 0; i < n; ++i)
      for (int j = i; j < n; ++j) {
        int dot = 0;
        for (int k = 0; k < n; ++k)
          dot += h[static_cast<size_t>(i) * n + k] * h[static_cast<size_t>(j) * n + k];
        if (dot != (i == j ? n : 0))
          fail("hadamard", "Goethals-Seidel search for order " + std::to_string(n) +
                               " returned a matrix that is not Hadamard");
      }
  }
  return g_plans.emplace(n, std::move(p)).first->second;
}

// a ⊗ b for ±1 matrices of orders na, nb (row index i = ia·nb + ib).
std::vector<int8_t> kronecker(const std::vector<int8_t>& a, int na, const std::vector<int8_t>& b,
                              int nb) {
  const int n = na * nb;
  std::vector<int8_t> h(static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      h[static_cast<size_t>(i) * n + j] =
          static_cast<int8_t>(a[static_cast<size_t>(i / nb) * na + j / nb] *
                              b[static_cast<size_t>(i % nb) * nb + j % nb]);
  return h;
}

std::vector<int8_t> matrix_for(int n);  // requires g_mutex held

std::vector<int8_t> build_base(int n, const Plan& plan) {
  switch (plan.method) {
    case Method::One:
      return {1};
    case Method::Paley1:
      return detail::paley1(plan.a);
    case Method::Paley2:
      return detail::paley2(plan.a);
    case Method::Kronecker:
      return kronecker(matrix_for(plan.a), plan.a, matrix_for(plan.b), plan.b);
    default:
      fail("hadamard", "no base construction for order " + std::to_string(n));
  }
}

std::vector<int8_t> matrix_for(int n) {
  Plan& p = plan_for(n);
  if (p.method == Method::None)
    fail("hadamard", "no Hadamard matrix of order " + std::to_string(n));
  if (p.method == Method::Sylvester) {  // H_n = H_{n/2} ⊗ [[1, 1], [1, -1]]
    static const std::vector<int8_t> h2 = {1, 1, 1, -1};
    return kronecker(matrix_for(p.a), p.a, h2, 2);
  }
  if (!p.matrix) p.matrix = std::make_shared<const std::vector<int8_t>>(build_base(n, p));
  return *p.matrix;
}

}  // namespace

bool has_hadamard(int n) {
  if (n < 1) return false;
  std::lock_guard<std::mutex> lock(g_mutex);
  return plan_for(n).method != Method::None;
}

std::vector<int8_t> hadamard_matrix(int n) {
  if (n < 1) fail("hadamard", "order must be positive, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_mutex);
  return matrix_for(n);
}

int hadamard_base_order(int n) {
  if (n < 1) return 0;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (true) {
    const Plan& p = plan_for(n);
    if (p.method == Method::None) return 0;
    if (p.method != Method::Sylvester) return n;
    n = p.a;
  }
}

std::string hadamard_construction(int n) {
  if (n < 1) return "";
  std::lock_guard<std::mutex> lock(g_mutex);
  const Plan& p = plan_for(n);
  switch (p.method) {
    case Method::None:
      return "";
    case Method::One:
      return "trivial(1)";
    case Method::Sylvester:
      return "sylvester(" + std::to_string(p.a) + ")";
    case Method::Paley1:
      return "paley1(q=" + std::to_string(p.a) + ")";
    case Method::Paley2:
      return "paley2(q=" + std::to_string(p.a) + ")";
    case Method::GoethalsSeidel:
      return "goethals-seidel(t=" + std::to_string(p.a) + ")";
    case Method::Kronecker:
      return "kronecker(" + std::to_string(p.a) + "x" + std::to_string(p.b) + ")";
  }
  return "";
}

}  // namespace lrc
