/* launcher.cpp -- launcher detection from the environment (see launcher.h). */
#include "comm/launcher.h"

#include <cerrno>
#include <cstdlib>

namespace dsz {
namespace comm {
namespace {

/* A non-negative decimal int, or -1 when absent or malformed. */
int env_int(const EnvLookup &env, const char *name) {
    const char *s = env(name);
    if (!s || !*s) return -1;
    errno = 0;
    char *end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1 << 30) return -1;
    return static_cast<int>(v);
}

}  // namespace

LauncherInfo detect_launcher(const EnvLookup &env) {
    LauncherInfo info;
    int size = env_int(env, "OMPI_COMM_WORLD_SIZE");
    if (size > 0) {
        info.launched = true;
        info.source = "mpirun";
        info.world_size = size;
        info.rank = env_int(env, "OMPI_COMM_WORLD_RANK");
        info.local_rank = env_int(env, "OMPI_COMM_WORLD_LOCAL_RANK");
        return info;
    }
    if (env_int(env, "PMIX_RANK") >= 0) {
        info.launched = true;
        info.source = "pmix";
        info.rank = env_int(env, "PMIX_RANK");
        int n = env_int(env, "SLURM_STEP_NUM_TASKS");
        info.world_size = n > 0 ? n : 0;
        info.local_rank = env_int(env, "SLURM_LOCALID");
        return info;
    }
    size = env_int(env, "PMI_SIZE");
    if (size > 0) {
        info.launched = true;
        info.source = "pmi";
        info.world_size = size;
        info.rank = env_int(env, "PMI_RANK");
        info.local_rank = env_int(env, "MPI_LOCALRANKID");
        return info;
    }
    size = env_int(env, "SLURM_STEP_NUM_TASKS");
    if (size > 0 && env_int(env, "SLURM_PROCID") >= 0) {
        info.launched = true;
        info.source = "srun";
        info.world_size = size;
        info.rank = env_int(env, "SLURM_PROCID");
        info.local_rank = env_int(env, "SLURM_LOCALID");
    }
    return info;
}

LauncherInfo detect_launcher() {
    return detect_launcher([](const char *name) { return std::getenv(name); });
}

}  // namespace comm
}  // namespace dsz
