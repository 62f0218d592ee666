// LRC_CUDA_PROFILE=1 (a diagnostic, off by default): named scopes add their wall time to one
// process-wide table, printed on stderr every minute (so a run stopped by a time limit still
// leaves it) and when the process exits, longest first. Device code synchronises its stream
// where a scope starts and ends (qcuda::Prof for the CUDA solver, the CUDA backend's forward
// operations), so a row is the time the device work of that scope took. Scopes may nest: rows
// are inclusive and overlap.
#pragma once

namespace lrc::scope_profile {

bool enabled();  // LRC_CUDA_PROFILE set and not "0"; read once
double now();    // seconds, steady clock
// One call of `name` (a string literal: kept by address) that took `seconds`; thread-safe.
void add(const char* name, double seconds);

// A scope of `name` whose device work sync(ctx) waits for where it starts and ends (a CUDA
// stream's synchronisation; it must not throw); off, one branch.
class Scope {
 public:
  using Sync = void (*)(const void* ctx);
  Scope(const char* name, Sync sync, const void* ctx);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_ = nullptr;  // null: the profile is off
  Sync sync_ = nullptr;
  const void* ctx_ = nullptr;
  double t0_ = 0;
};

}  // namespace lrc::scope_profile
