/*
 * launcher.h -- who started this process, read from the environment only.
 *
 * dszero must not initialise MPI unless a launcher started several ranks,
 * so the decision is made from environment variables before any MPI call:
 * Open MPI's mpirun (OMPI_COMM_WORLD_*), PMIx launchers (PMIX_RANK), PMI-1/2
 * launchers such as MPICH's hydra (PMI_RANK/PMI_SIZE) and Slurm's srun
 * (SLURM_PROCID with SLURM_STEP_NUM_TASKS, which only srun sets: a batch
 * script itself is not a launched step).
 */
#pragma once

#include <functional>
#include <string>

namespace dsz {
namespace comm {

struct LauncherInfo {
    bool launched = false;
    std::string source;   /* "mpirun", "pmix", "pmi", "srun" or "" */
    int world_size = 0;   /* 0: unknown until MPI is initialised (PMIx alone) */
    int rank = -1;
    int local_rank = -1;
};

using EnvLookup = std::function<const char *(const char *)>;

LauncherInfo detect_launcher();
LauncherInfo detect_launcher(const EnvLookup &env);

}  // namespace comm
}  // namespace dsz
