// Fixture for the layering check's own test: quant may not include pipeline.
#pragma once
#include "lrc/pipeline/quantize_options.h"
