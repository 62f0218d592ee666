#include "lrc/core/blas_info.h"

// OpenBLAS's own entry point (cblas.h declares it only in some packagings).
extern "C" char* openblas_get_corename(void);

namespace lrc {

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

}  // namespace lrc
