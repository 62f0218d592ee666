// Fixture for the layering check's own test: io and quant are siblings.
#include "lrc/quant/stats.h"
#include "lrc/model/llama.h"
#include <cblas.h>
