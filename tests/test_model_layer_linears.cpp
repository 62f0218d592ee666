// kLayerLinears, the one table of a layer's linears: it covers every Linear of LlamaLayer once
// (with phi3's fused table, kFusedLayerLinears), its shapes are the ones validate_model
// enforces, and the HF tensor list follows it.
#include <gtest/gtest.h>

#include <set>

#include "lrc/io/hf_tensor_map.h"
#include "lrc/model/layer_linears.h"
#include "support/random_model.h"

using namespace lrc;

namespace {

TEST(LayerLinears, CoverEveryLinearOfALayerOnce) {
  // A Linear added to LlamaLayer without a row here changes the layer's size.
  // (The tenth Linear is MoE's router, a LayerVector: never quantized; the experts' linears
  // are in moe_layer_linears, tested below.)
  static_assert(sizeof(LlamaLayer) == 4 * sizeof(std::vector<float>) + 10 * sizeof(Linear) +
                                          sizeof(std::vector<MoeExpert>),
                "LlamaLayer gained or lost a member: update kLayerLinears");
  std::set<std::string> names;
  LlamaLayer L;
  std::set<const Linear*> members;
  for (const auto& t : kLayerLinears) {
    names.insert(t.name);
    members.insert(&t.of(L));
  }
  EXPECT_EQ(names.size(), 7u);
  EXPECT_EQ(members.size(), 7u);
  // Groups in forward order: q/k/v, o, gate/up, down.
  std::vector<int> groups;
  for (const auto& t : kLayerLinears) groups.push_back(t.group);
  EXPECT_EQ(groups, (std::vector<int>{0, 0, 0, 1, 2, 2, 3}));
  // The fused table adds the two remaining Linears of LlamaLayer, one per shared input.
  for (const auto& t : kFusedLayerLinears) members.insert(&t.of(L));
  EXPECT_EQ(members.size(), 9u);
  groups.clear();
  for (const auto& t : kFusedLayerLinears) groups.push_back(t.group);
  EXPECT_EQ(groups, (std::vector<int>{0, 1, 2, 3}));
  LlamaConfig c;
  EXPECT_EQ(layer_linears(c).size(), 7u);
  c.fused_proj = true;
  EXPECT_EQ(layer_linears(c).data(), kFusedLayerLinears.data());
}

// Mixtral: q/k/v/o, then w1, w3, w2 of each expert (HF's names), each a distinct Linear of the
// layer; the table is made once per expert count and sizes the experts on first access.
TEST(LayerLinears, MoeTableListsEveryExpertsLinearsOnce) {
  LlamaConfig c = test::tiny_config(64, 96, 2, 4, 2);
  c.arch = "mixtral";
  c.n_experts = 3;
  c.n_experts_used = 2;
  const auto t = layer_linears(c);
  ASSERT_EQ(t.size(), 4u + 3u * 3u);
  EXPECT_EQ(layer_linears(c).data(), t.data());
  LlamaLayer L;
  std::set<const Linear*> members;
  std::vector<int> groups;
  for (const auto& e : t) {
    members.insert(&e.of(L));
    groups.push_back(e.group);
  }
  EXPECT_EQ(L.experts.size(), 3u);
  EXPECT_EQ(members.size(), t.size());
  EXPECT_EQ(groups, (std::vector<int>{0, 0, 0, 1, 2, 2, 3, 2, 2, 3, 2, 2, 3}));
  EXPECT_STREQ(t[12].name, "block_sparse_moe.experts.2.w2");
  EXPECT_EQ(&t[12].of(L), &L.experts[2].w_down);
  EXPECT_EQ(&t[5].of(L), &L.experts[0].w_up);  // w3 is up
  EXPECT_EQ(linear_dim(c, t[12].in), 96);
  // The router is a layer vector [n x dim], 16-bit and never in the quantized table.
  const auto v = layer_vectors(c, L);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].name, "block_sparse_moe.gate.weight");
  EXPECT_EQ(v[0].dims(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(v[0].linear, &L.router);
}

TEST(LayerLinears, ShapesAreTheModelsAndTheHfListFollowsTheTable) {
  const LlamaConfig c = test::tiny_config(64, 96, 2, 4, 2);  // GQA: k/v smaller than q
  LlamaModel m = test::random_model(c, 1);
  for (const auto& L : m.layers)
    for (const auto& t : kLayerLinears) {
      EXPECT_EQ(t.of(L).d_out, linear_dim(c, t.out)) << t.name;
      EXPECT_EQ(t.of(L).d_in, linear_dim(c, t.in)) << t.name;
    }
  EXPECT_EQ(linear_dim(c, LinearDim::KvHeads), 32);
  std::vector<std::string> layer1;
  for (const auto& s : hf_tensor_slots(m))
    if (s.name.starts_with("model.layers.1.") && s.linear) layer1.push_back(s.name);
  std::vector<std::string> want;
  for (const auto& t : kLayerLinears)
    want.push_back("model." + layer_linear_name(1, t) + ".weight");
  EXPECT_EQ(layer1, want);
}

}  // namespace
