// One quantized linear and its report as bytes, exactly (doubles as their bit patterns): the
// resume records (resume.h) and the broadcast of a solved linear from the rank that solved it
// to the others (quantize_model.cpp, several ranks) share these.
#pragma once

#include <bit>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lrc/format/linear.h"
#include "lrc/pipeline/linear_quantizer.h"

namespace lrc {

class Communicator;  // lrc/core/communicator.h

// Doubles in records travel as their bit patterns: exact, NaN and Inf included (JSON has
// neither).
inline uint64_t bits_of(double d) { return std::bit_cast<uint64_t>(d); }
inline double double_of(const nlohmann::json& j) {
  return std::bit_cast<double>(j.get<uint64_t>());
}

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

// The linears lins (each with its name) solved by solve(j), which quantizes lins[j].first and
// returns its report. One rank (comm null or of size 1): solve(0), solve(1), ... Several ranks:
// lins[j] goes to rank (*next_owner)++ mod size (the count goes on through groups and layers);
// each rank solves its own, then every result is broadcast from its rank in order, so every
// rank ends with every solved linear. The reports in order; *wait_seconds (optional) gets the
// seconds from the end of this rank's own solves to the last broadcast.
std::vector<LinearReport> solve_round_robin(
    const std::vector<std::pair<Linear*, std::string>>& lins,
    const std::function<LinearReport(size_t)>& solve, const Communicator* comm, int* next_owner,
    double* wait_seconds = nullptr);

}  // namespace lrc
