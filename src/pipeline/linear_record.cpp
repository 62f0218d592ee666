#include "lrc/pipeline/linear_record.h"

#include <chrono>
#include <cstring>
#include <string>

#include "lrc/core/communicator.h"
#include "lrc/core/error.h"

namespace lrc {

// The linear fields of a layer record (resume.h) or a broadcast solved linear.
nlohmann::json linear_meta(const Linear& l) {
  nlohmann::json j = {{"d_out", l.d_out},        {"d_in", l.d_in},
                      {"quantized", l.quantized()}, {"rank", l.lr.rank},
                      {"act_bits", l.act.bits}, {"act_clip", bits_of(l.act.clip)},
                      {"act_groupsize", l.act.groupsize}};
  if (l.packed)
    j.update({{"bits", l.packed->bits},
              {"groupsize", l.packed->groupsize},
              {"symmetric", l.packed->symmetric}});
  return j;
}

nlohmann::json report_meta(const LinearReport& r) {
  nlohmann::json j = {{"name", r.name},
                      {"d_out", r.d_out},
                      {"d_in", r.d_in},
                      {"rank", r.rank},
                      {"a_clip", bits_of(r.a_clip)},
                      {"objective", bits_of(r.objective)},
                      {"objective_fp", bits_of(r.objective_fp)},
                      {"objective_gptq", bits_of(r.objective_gptq)},
                      {"seconds", bits_of(r.seconds)}};
  nlohmann::json spec = nlohmann::json::array();
  for (double s : r.spectrum) spec.push_back(bits_of(s));
  j["spectrum"] = spec;
  if (r.expert_tokens >= 0) {  // MoE expert (linear_quantizer.h)
    j["expert_tokens"] = r.expert_tokens;
    j["rule"] = r.rule;
  }
  for (const DampingEvent& e : r.damping)
    j["damping"].push_back({{"step", e.step},
                            {"configured", bits_of(e.configured)},
                            {"used", bits_of(e.used)},
                            {"retries", e.retries}});
  j["gptq_fallback"] = r.gptq_fallback;
  return j;
}

LinearReport report_from(const nlohmann::json& j) {
  LinearReport r;
  r.name = j.at("name").get<std::string>();
  r.d_out = j.at("d_out").get<int>();
  r.d_in = j.at("d_in").get<int>();
  r.rank = j.at("rank").get<int>();
  r.a_clip = static_cast<float>(double_of(j.at("a_clip")));
  r.objective = double_of(j.at("objective"));
  r.objective_fp = double_of(j.at("objective_fp"));
  r.objective_gptq = double_of(j.at("objective_gptq"));
  r.seconds = double_of(j.at("seconds"));
  for (const auto& s : j.at("spectrum")) r.spectrum.push_back(double_of(s));
  r.expert_tokens = j.value("expert_tokens", int64_t{-1});
  r.rule = j.value("rule", std::string());
  if (j.contains("damping"))
    for (const auto& e : j.at("damping"))
      r.damping.push_back({e.at("step").get<std::string>(), double_of(e.at("configured")),
                           double_of(e.at("used")), e.at("retries").get<int>()});
  r.gptq_fallback = j.at("gptq_fallback").get<bool>();
  return r;
}

void apply_linear_meta(const nlohmann::json& m, Linear& l, PackedWeight p, const char* where) {
  l.d_out = m.at("d_out").get<int>();
  l.d_in = m.at("d_in").get<int>();
  l.packed.reset();
  if (m.at("quantized").get<bool>()) {
    p.d_out = l.d_out;
    p.d_in = l.d_in;
    p.bits = m.at("bits").get<int>();
    p.groupsize = m.at("groupsize").get<int>();
    p.symmetric = m.at("symmetric").get<bool>();
    p.validate(where);
    l.packed = std::move(p);
  }
  l.lr.rank = m.at("rank").get<int>();
  l.act.bits = m.at("act_bits").get<int>();
  l.act.clip = static_cast<float>(double_of(m.at("act_clip")));
  l.act.groupsize = m.at("act_groupsize").get<int>();
}

namespace {
template <class T>
void put(std::vector<uint8_t>& out, const std::vector<T>& v) {
  const uint64_t n = v.size() * sizeof(T);
  const size_t at = out.size();
  out.resize(at + 8 + n);
  std::memcpy(out.data() + at, &n, 8);
  if (n) std::memcpy(out.data() + at + 8, v.data(), n);
}
template <class T>
void get(const std::vector<uint8_t>& in, size_t& at, std::vector<T>& v, const char* where) {
  uint64_t n = 0;
  if (at + 8 > in.size()) fail(where, "truncated solved linear");
  std::memcpy(&n, in.data() + at, 8);
  at += 8;
  if (n % sizeof(T) != 0 || n > in.size() - at) fail(where, "damaged solved linear");
  v.resize(n / sizeof(T));
  if (n) std::memcpy(v.data(), in.data() + at, n);
  at += n;
}
}  // namespace

// Layout: the JSON {"linear", "report"} as a byte array, then codes, scales, zeros, U, V (each
// a u64 byte count and the bytes).
std::vector<uint8_t> encode_solved(const Linear& l, const LinearReport& r) {
  static const std::vector<uint8_t> no_codes;
  static const std::vector<float> none;
  const std::string js = nlohmann::json{{"linear", linear_meta(l)}, {"report", report_meta(r)}}.dump();
  std::vector<uint8_t> out;
  put(out, std::vector<uint8_t>(js.begin(), js.end()));
  put(out, l.packed ? l.packed->codes : no_codes);
  put(out, l.packed ? l.packed->scales : none);
  put(out, l.packed ? l.packed->zeros : none);
  put(out, l.lr.u);
  put(out, l.lr.v);
  return out;
}

void decode_solved(const std::vector<uint8_t>& in, Linear& l, LinearReport& r, const char* where) {
  size_t at = 0;
  std::vector<uint8_t> js;
  get(in, at, js, where);
  PackedWeight p;
  get(in, at, p.codes, where);
  get(in, at, p.scales, where);
  get(in, at, p.zeros, where);
  std::vector<float> u, v;
  get(in, at, u, where);
  get(in, at, v, where);
  if (at != in.size()) fail(where, "damaged solved linear (trailing bytes)");
  try {
    const nlohmann::json j = nlohmann::json::parse(js.begin(), js.end());
    const int d_out = j.at("linear").at("d_out").get<int>(), d_in = j.at("linear").at("d_in").get<int>();
    if (d_out != l.d_out || d_in != l.d_in)
      fail(where, "solved linear of shape " + std::to_string(d_out) + " x " +
                      std::to_string(d_in) + " for one of " + std::to_string(l.d_out) + " x " +
                      std::to_string(l.d_in));
    apply_linear_meta(j.at("linear"), l, std::move(p), where);
    r = report_from(j.at("report"));
  } catch (const nlohmann::json::exception& e) {
    fail(where, std::string("damaged solved linear: ") + e.what());
  }
  l.w.clear();
  l.w.shrink_to_fit();
  l.lr.u = std::move(u);
  l.lr.v = std::move(v);
}

std::vector<LinearReport> solve_round_robin(
    const std::vector<std::pair<Linear*, std::string>>& lins,
    const std::function<LinearReport(size_t)>& solve, const Communicator* comm, int* next_owner,
    double* wait_seconds) {
  std::vector<LinearReport> reps(lins.size());
  const bool ranked = comm && comm->size() > 1;
  const int me = ranked ? comm->rank() : 0;
  std::vector<int> owner(lins.size(), 0);
  for (size_t j = 0; j < lins.size(); ++j) {
    if (ranked) owner[j] = (*next_owner)++ % comm->size();
    if (owner[j] == me) reps[j] = solve(j);
  }
  if (!ranked) return reps;
  const auto t = std::chrono::steady_clock::now();
  for (size_t j = 0; j < lins.size(); ++j) {
    std::vector<uint8_t> bytes;
    if (owner[j] == me) bytes = encode_solved(*lins[j].first, reps[j]);
    comm->broadcast(bytes, owner[j]);
    if (owner[j] != me)
      decode_solved(bytes, *lins[j].first, reps[j],
                    (lins[j].second + " from rank " + std::to_string(owner[j])).c_str());
  }
  if (wait_seconds)
    *wait_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  return reps;
}

}  // namespace lrc
