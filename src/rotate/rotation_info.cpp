// RotationInfo: JSON round trip, and turning it back into the model's online transforms.
#include <nlohmann/json.hpp>

#include "lrc/core/error.h"
#include "lrc/rotate/quarot.h"

namespace lrc {

void attach_online_transforms(LlamaModel& m, const RotationInfo& info) {
  const LlamaConfig& c = m.cfg;
  auto make = [&](const std::optional<OnlineSpec>& s, int size,
                  const char* name) -> OnlineTransformPtr {
    if (!s) return nullptr;
    if (s->size() != size)
      fail("rotation", std::string(name) + " acts on rows of " + std::to_string(s->size()) +
                           ", the model needs " + std::to_string(size));
    return make_online_transform(*s);
  };
  m.online_o = make(info.online_o, c.n_heads * c.head_dim(), "online_o");
  if (info.online_o && info.online_o->block != c.head_dim())
    fail("rotation", "online_o must act across heads of " + std::to_string(c.head_dim()));
  m.online_down = make(info.online_down, c.hidden_dim, "online_down");
  m.online_qk = make(info.online_qk, c.head_dim(), "online_qk");
}

void to_json(nlohmann::json& j, const OnlineSpec& s) {
  j = nlohmann::json{
      {"kind", rotation_kind_name(s.kind)}, {"n", s.n}, {"block", s.block}, {"seed", s.seed}};
}

void from_json(const nlohmann::json& j, OnlineSpec& s) {
  try {
    s.kind = parse_rotation_kind(j.at("kind").get<std::string>());
    s.n = j.at("n").get<int>();
    s.block = j.value("block", 1);
    s.seed = j.at("seed").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("rotation", std::string("bad online transform entry: ") + e.what());
  }
  // n * block is a row length (OnlineSpec::size, an int): bounded so that it cannot overflow.
  if (s.n < 1 || s.block < 1 || int64_t{s.n} * s.block > (int64_t{1} << 24))
    fail("rotation", "online transform entry: n and block must be positive, n * block <= 2^24");
}

namespace {
const char* const kSteps[] = {"residual", "value_heads", "online_o", "online_down", "online_qk"};
std::optional<OnlineSpec> RotationInfo::*const kFields[] = {
    &RotationInfo::residual, &RotationInfo::value_heads, &RotationInfo::online_o,
    &RotationInfo::online_down, &RotationInfo::online_qk};
}  // namespace

void to_json(nlohmann::json& j, const RotationInfo& info) {
  j = nlohmann::json{{"seed", info.seed}, {"norms_folded", info.norms_folded}};
  for (size_t i = 0; i < std::size(kSteps); ++i)
    if (const auto& s = info.*kFields[i]) j[kSteps[i]] = *s;
  if (const auto& c = info.calibrated) {
    nlohmann::json cj = {{"rows", c->rows},
                         {"before", c->before},
                         {"after", c->after},
                         {"held_out_before", c->held_out_before},
                         {"held_out_after", c->held_out_after},
                         {"seconds", c->seconds}};
    if (!c->objective.empty()) {
      cj["objective"] = c->objective;
      cj["steps"] = c->steps;
    }
    if (c->smooth_alpha > 0) cj["smooth_alpha"] = c->smooth_alpha;
    j["calibrated"] = cj;
  }
}

void from_json(const nlohmann::json& j, RotationInfo& info) {
  if (!j.is_object()) fail("rotation", "rotation info must be a JSON object");
  info = RotationInfo{};
  try {
    info.seed = j.value("seed", uint64_t{0});
    info.norms_folded = j.value("norms_folded", false);
  } catch (const nlohmann::json::exception& e) {
    fail("rotation", std::string("bad rotation info: ") + e.what());
  }
  for (size_t i = 0; i < std::size(kSteps); ++i)
    if (j.contains(kSteps[i])) info.*kFields[i] = j.at(kSteps[i]).get<OnlineSpec>();
  if (j.contains("calibrated")) {
    const nlohmann::json& cj = j.at("calibrated");
    ResidualCalibrationInfo c;
    try {
      c.objective = cj.value("objective", std::string());
      c.steps = cj.value("steps", 0);
      c.rows = cj.value("rows", int64_t{0});
      c.before = cj.value("before", 0.0);
      c.after = cj.value("after", 0.0);
      c.held_out_before = cj.value("held_out_before", 0.0);
      c.held_out_after = cj.value("held_out_after", 0.0);
      c.smooth_alpha = cj.value("smooth_alpha", 0.0);
      c.seconds = cj.value("seconds", 0.0);
    } catch (const nlohmann::json::exception& e) {
      fail("rotation", std::string("bad calibrated rotation entry: ") + e.what());
    }
    info.calibrated = c;
  }
}

}  // namespace lrc
