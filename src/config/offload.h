/* offload.h -- reading zero_optimization's offload sections (offload.cpp). */
#pragma once

#include "config/parsers.h"

namespace dsz::cfg {

/* Each returns whether its section was given (and not null). */
bool read_offload_param(Section &zero, OffloadParamConfig &out);
bool read_offload_optimizer(Section &zero, OffloadOptimizerConfig &out);

}  // namespace dsz::cfg
