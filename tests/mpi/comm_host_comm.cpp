/*
 * comm_host_comm.cpp -- a host that owns MPI: it initialises MPI itself,
 * hands dszero an MPI_Comm (a split of its world), and finalises MPI at the
 * end. dszero must duplicate the communicator, work on exactly its ranks,
 * and neither initialise nor finalise MPI. Run under mpirun -np 2 and 4.
 */
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "comm/communicator.h"
#include "common/error.h"

using namespace dsz;
using namespace dsz::comm;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                        \
        }                                                                        \
    } while (0)

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int wr = 0, ws = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    MPI_Comm_size(MPI_COMM_WORLD, &ws);
    MPI_Comm half;
    MPI_Comm_split(MPI_COMM_WORLD, wr % 2, wr, &half);
    int hr = 0, hs = 0;
    MPI_Comm_rank(half, &hr);
    MPI_Comm_size(half, &hs);
    {
        CommOptions o;
        o.mpi_comm = &half;
        o.name = "half";
        auto c = create_communicator(o);
        CHECK(!std::strcmp(c->backend(), "mpi"));
        CHECK(c->size() == hs && c->rank() == hr);
        int64_t sum = c->all_reduce_value<int64_t>(wr, ReduceOp::sum), want = 0;
        for (int r = wr % 2; r < ws; r += 2) want += r;
        CHECK(sum == want);

        /* MPI is initialised by the host: automatic picks MPI on its world. */
        auto w = create_communicator();
        CHECK(!std::strcmp(w->backend(), "mpi") && w->size() == ws);
        CHECK(w->all_reduce_value<int32_t>(1, ReduceOp::sum) == ws);

        CommOptions bad;
        bad.mpi_comm = &half;
        bad.world_size = hs + 1;
        bool threw = false;
        try {
            create_communicator(bad);
        } catch (const Error &e) {
            threw = e.status() == DSZ_ERR_INVALID_ARGUMENT;
        }
        CHECK(threw);
    }
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    CHECK(inited && !finalized); /* dszero left MPI alone */
    /* the host's communicator is still the host's */
    int x = 1, y = 0;
    MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_SUM, half);
    CHECK(y == hs);
    MPI_Comm_free(&half);
    if (wr == 0) std::printf("comm_host_comm: OK on %d ranks\n", ws);
    return MPI_Finalize() == MPI_SUCCESS ? 0 : 1;
}
