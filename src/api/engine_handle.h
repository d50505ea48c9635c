/*
 * engine_handle.h -- the engine behind a dsz_engine handle, for the C shims
 * of other subsystems (MoE groups over an engine's ranks). Defined in
 * api.cpp, which owns the registry of live engines.
 */
#pragma once

#include "dszero.h"

namespace dsz {

class Engine;

/* The live engine of handle e; DSZ_ERR_INVALID_ARGUMENT for NULL or a freed handle. */
Engine &live_engine(dsz_engine *e);

}  // namespace dsz
