#!/bin/sh
# multihost_overlap.sh -- ZeRO step time across two simulated hosts joined by
# a shaped link (a benchmark, not a test; needs root).
#
#   bench/multihost_overlap.sh BUILD_DIR [RATE] [DELAY] [MPARAMS] [COMPUTE_MS] [BUCKET...]
#
# Two network namespaces (tests/multihost/netns.sh), one rank on each, Open
# MPI over TCP; each host's link is shaped with tc netem (default 1gbit and
# 1ms, so 2ms one way between the hosts). Runs bench/bench_zero_step, which
# reports per stage the step time and the time blocked on communication
# with overlap_comm on and off, and the share of communication hidden behind
# the simulated compute. The link's raw throughput is measured in the same
# run (bench_comm: raw MPI reduce-scatter next to dszero's).
set -eu
BUILD=$(readlink -f "$1")
RATE=${2:-1gbit}
DELAY=${3:-1ms}
MPARAMS=${4:-12}
COMPUTE=${5:-2}
shift $(( $# < 5 ? $# : 5 ))
BUCKETS=${*:-2000000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
NETNS="$HERE/tests/multihost/netns.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DSZ_COMM_TIMEOUT=600
trap '"$NETNS" down >/dev/null 2>&1 || true' EXIT
"$NETNS" up 2
"$NETNS" shape 1 "$RATE" "$DELAY"
"$NETNS" shape 2 "$RATE" "$DELAY"
MH="--host dsz-h1:1,dsz-h2:1 --mca plm_rsh_agent $HERE/tests/multihost/rsh.sh --mca btl tcp,self
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none
    -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM -x DSZ_COMM_TIMEOUT"
echo "link: $RATE, $DELAY per host link (tc netem), 2 hosts x 1 rank"
echo "-- the link, measured: raw MPI_Reduce_scatter_block next to dszero's, 16 MiB"
ip netns exec dsz-h1 mpirun $MH "$BUILD/bench/bench_comm" --op reduce_scatter --min-mib 16 --max-mib 16 --iters 3 --rounds 1
echo "-- ZeRO steps"
ip netns exec dsz-h1 mpirun $MH "$BUILD/bench/bench_zero_step" "$MPARAMS" 3 "$COMPUTE" $BUCKETS
