/*
 * comm_fault.cpp -- ranks that misbehave, run under mpirun by run_fault.sh.
 *
 * Each mode makes one rank fail in its own way; the others must end with a
 * clear dszero error (or be ended by mpirun) and never hang:
 *   late     the last rank sleeps past the timeout instead of joining an
 *            all_reduce: the others get DSZ_ERR_TIMEOUT naming all_reduce,
 *            its sequence number and the silent rank.
 *   exit     the last rank _exit()s without a word before the all_reduce.
 *   quit     the last rank returns from main (MPI finalised normally).
 *   diverge  rank 0 calls all_reduce while the others broadcast: rank 0's
 *            timeout says which operation the others are in.
 *   size     rank 0 all-reduces 1000 floats, the others 2000: DSZ_ERR_COMM.
 * A rank that saw the error it should prints "EXPECTED <status>: <message>";
 * anything else prints "UNEXPECTED" and the script fails.
 */
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "comm/communicator.h"
#include "common/error.h"

using namespace dsz;
using namespace dsz::comm;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s late|exit|quit|diverge|size\n", argv[0]);
        return 2;
    }
    const std::string mode = argv[1];
    std::unique_ptr<Communicator> c = create_communicator();
    const int W = c->size(), me = c->rank(), last = W - 1;
    std::vector<float> buf(1 << 18, 1.0f); /* 1 MiB: past every eager limit */
    for (int i = 0; i < 3; ++i) c->all_reduce(buf.data(), 16, ReduceOp::sum); /* #0..#2 succeed */
    /* Short only from here: a rank slow to start on a loaded machine must not
     * time out in the warm-up above. */
    c->set_timeout(3);
    std::fflush(stdout);

    dsz_status want = DSZ_ERR_TIMEOUT;
    std::vector<const char *> needles = {"all_reduce #3", "timed out after"};
    std::string silent = strprintf("no data yet from rank %d", last);
    try {
        if (mode == "late") {
            needles.push_back(silent.c_str());
            if (me == last) sleep(10);
            c->all_reduce(buf.data(), 1000, ReduceOp::sum);
        } else if (mode == "exit" || mode == "quit") {
            if (me == last) {
                std::printf("rank %d leaves now\n", me);
                std::fflush(stdout);
                if (mode == "exit") _exit(0);
                return 0;
            }
            c->all_reduce(buf.data(), 1000, ReduceOp::sum);
        } else if (mode == "diverge") {
            if (me == 0) {
                needles.push_back("has sent data for broadcast #3 instead");
                c->all_reduce(buf.data(), 1000, ReduceOp::sum);
            } else {
                needles = {"broadcast #3", "timed out after"};
                c->broadcast(buf.data(), buf.size() * 4, last);
            }
        } else if (mode == "size") {
            want = DSZ_ERR_COMM;
            needles = {"all_reduce #3", "the ranks disagree on this call's sizes"};
            c->all_reduce(buf.data(), me == 0 ? 1000 : 2000, ReduceOp::sum);
        } else {
            std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
            return 2;
        }
        std::printf("UNEXPECTED: rank %d completed the operation\n", me);
        return 1;
    } catch (const Error &e) {
        bool ok = e.status() == want;
        for (const char *n : needles)
            if (!std::strstr(e.what(), n)) ok = false;
        std::printf("%s %d: rank %d: %s\n", ok ? "EXPECTED" : "UNEXPECTED", e.status(), me, e.what());
        std::fflush(stdout);
        /* The communicator is unusable from now on, and says so. */
        try {
            c->barrier();
            std::printf("UNEXPECTED: barrier after failure on rank %d\n", me);
        } catch (const Error &e2) {
            if (e2.status() != DSZ_ERR_COMM || !std::strstr(e2.what(), "failed earlier"))
                std::printf("UNEXPECTED: after failure: %s\n", e2.what());
        }
        return ok ? 0 : 1;
    }
}
