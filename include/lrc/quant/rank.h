// Rank of the low-rank correction from a parameter budget: U (d_out x k) and V (d_in x k)
// together hold at most a fraction f of W's d_out*d_in entries, so
//   k = floor(f * d_out * d_in / (d_out + d_in)).
#pragma once

namespace lrc {

// Throws lrc::Error if f is negative or not finite, or if k > min(d_in, d_out).
int rank_from_fraction(double f, int d_out, int d_in);

// Throws lrc::Error (naming `where`) unless 0 <= rank <= min(d_in, d_out).
void check_rank(int rank, int d_out, int d_in, const char* where);

}  // namespace lrc
