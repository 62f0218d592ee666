// One quantized linear and its report as bytes, exactly (doubles as their bit patterns): the
// resume records (resume.h) and the broadcast of a solved linear from the rank that solved it
// to the others (quantize_model.cpp, several ranks) share these.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "lrc/format/linear.h"
#include "lrc/pipeline/linear_quantizer.h"

namespace lrc {

// The fields of a linear that are not arrays: shape, rank, Q_a, and Ŵ's grid when quantized.
nlohmann::json linear_meta(const Linear& l);
// l (whose arrays the caller has filled: w, bias, lr.u, lr.v) gets the fields of linear_meta;
// codes (the packed arrays codes/scales/zeros) becomes l.packed when meta says quantized,
// checked against the shape (where: the file or peer named in an error).
void apply_linear_meta(const nlohmann::json& meta, Linear& l, PackedWeight codes,
                       const char* where);

nlohmann::json report_meta(const LinearReport& r);
LinearReport report_from(const nlohmann::json& j);

// A solved linear (packed Ŵ, U, V, Q_a; its FP weights already dropped, the bias untouched) and
// its report, as one byte string, and back into a linear of the same shape.
std::vector<uint8_t> encode_solved(const Linear& l, const LinearReport& r);
void decode_solved(const std::vector<uint8_t>& bytes, Linear& l, LinearReport& r,
                   const char* where);

}  // namespace lrc
