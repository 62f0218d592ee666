// The layer-linear table of a MoE layer (lrc/model/layer_linears.h): its entries name each
// expert's linears, so the table depends on the expert count. Made once per count and kept
// (names included) for the whole process, so the spans handed out never dangle.
#include "lrc/model/layer_linears.h"

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lrc {

std::span<const LayerLinearInfo> moe_layer_linears(int n_experts) {
  static std::mutex mu;
  static std::map<int, std::vector<LayerLinearInfo>> tables;
  static std::deque<std::string> names;  // deque: growing it never moves the strings
  std::lock_guard<std::mutex> lock(mu);
  auto it = tables.find(n_experts);
  if (it != tables.end()) return it->second;
  std::vector<LayerLinearInfo> t(kLayerLinears.begin(), kLayerLinears.begin() + 4);  // q k v o
  struct Part {
    const char* hf;  // HF's name of the expert's linear
    Linear MoeExpert::*member;
    LinearDim out, in;
    int group;
  };
  constexpr Part kParts[] = {
      {"w1", &MoeExpert::w_gate, LinearDim::Hidden, LinearDim::Dim, 2},
      {"w3", &MoeExpert::w_up, LinearDim::Hidden, LinearDim::Dim, 2},
      {"w2", &MoeExpert::w_down, LinearDim::Dim, LinearDim::Hidden, 3},
  };
  for (int e = 0; e < n_experts; ++e)
    for (const Part& p : kParts) {
      names.push_back("block_sparse_moe.experts." + std::to_string(e) + "." + p.hf);
      t.push_back({names.back().c_str(), nullptr, p.out, p.in, p.group, e, p.member, n_experts});
    }
  return tables.emplace(n_experts, std::move(t)).first->second;
}

}  // namespace lrc
