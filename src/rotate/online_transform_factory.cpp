// OnlineSpec -> the OnlineTransform it names (how a saved checkpoint gets its rotations back).
#include "lrc/core/error.h"
#include "lrc/rotate/online_transforms.h"

namespace lrc {

OnlineTransformPtr make_online_transform(const OnlineSpec& spec) {
  if (spec.n < 1 || spec.block < 1)
    fail("online transform",
         "invalid spec: n = " + std::to_string(spec.n) + ", block = " + std::to_string(spec.block));
  const Rotation r = make_rotation(spec.kind, spec.n, spec.seed);
  if (spec.block > 1) return std::make_shared<AcrossHeadsTransform>(r, spec.block);
  if (r.kind == RotationKind::Hadamard) return std::make_shared<HadamardTransform>(r);
  return std::make_shared<DenseTransform>(r);
}

}  // namespace lrc
