#!/bin/sh
# run.sh -- dszero across simulated hosts (network namespaces, Open MPI TCP).
#
#   run.sh TRAIN_DUMP [parity|linkfail|all]
#
# parity:   2 hosts x 2 ranks train at ZeRO stages 1, 2 and 3 in fp32 and
#           bf16; the parameters must equal, bit for bit, those of the same
#           4 ranks on one host (shared memory).
# linkfail: 2 x 2 ranks train and checkpoint; host 2's link is cut mid-run.
#           Every rank must stop with dszero's timeout error naming the
#           collective within the configured time (DSZ_COMM_TIMEOUT), no
#           training process may be left, and the last checkpoint must load.
# Exits 77 (skipped) where network namespaces cannot be made (not root, no
# CAP_NET_ADMIN). Always tears the namespaces down, whatever happens.
set -eu
BIN=$(readlink -f "$1")
WHAT=${2:-all}
HERE=$(cd "$(dirname "$0")" && pwd)
NETNS="$HERE/netns.sh"
WORK=$(mktemp -d /tmp/dsz-multihost.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
TIMEOUT_S=5

cleanup() {
  "$NETNS" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ] || ! ip netns add dsz-probe 2>/dev/null; then
  echo "SKIPPED: network namespaces need root and CAP_NET_ADMIN"
  exit 77
fi
ip netns del dsz-probe
"$NETNS" up 2

# Open MPI over TCP on the simulated network only; daemons started in the
# namespaces by the rsh agent; mpirun itself runs on host 1.
MH="--host dsz-h1:2,dsz-h2:2 --mca plm_rsh_agent $HERE/rsh.sh --mca btl tcp,self
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none
    -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM -x DSZ_COMM_TIMEOUT"
LOCAL="-np 4 --oversubscribe --bind-to none"

fail() { echo "FAIL: $*"; exit 1; }

parity() {
  export DSZ_COMM_TIMEOUT=60
  for stage in 1 2 3; do
    for dt in fp32 bf16; do
      timeout 120 mpirun $LOCAL "$BIN" $stage $dt "$WORK/one-host.bin" >"$WORK/log" 2>&1 ||
        { cat "$WORK/log"; fail "stage $stage $dt on one host"; }
      timeout 120 ip netns exec dsz-h1 mpirun $MH "$BIN" $stage $dt "$WORK/two-hosts.bin" >"$WORK/log" 2>&1 ||
        { cat "$WORK/log"; fail "stage $stage $dt on two hosts"; }
      cmp -s "$WORK/one-host.bin" "$WORK/two-hosts.bin" ||
        fail "stage $stage $dt: parameters on 2 hosts x 2 ranks differ from 4 ranks on one host"
      echo "ok: stage $stage $dt: 2 hosts x 2 ranks = 1 host x 4 ranks, bit for bit"
    done
  done
}

linkfail() {
  export DSZ_COMM_TIMEOUT=$TIMEOUT_S
  ck="$WORK/ckpt"
  ip netns exec dsz-h1 mpirun $MH "$BIN" 2 fp32 - --steps 100000 --ckpt "$ck" --save-every 5 --sleep-ms 20 --log-dir "$WORK" \
    >"$WORK/run.out" 2>"$WORK/run.err" &
  job=$!
  i=0
  until grep -q "saved step 10" "$WORK/run.out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 600 ] || { cat "$WORK/run.err"; fail "training across hosts did not reach step 10"; }
    sleep 0.1
  done
  "$NETNS" link 2 down
  cut=$(date +%s)
  # Every training process must end by itself, with dszero's error.
  i=0
  while pgrep -x "$(basename "$BIN")" >/dev/null; do
    i=$((i + 1))
    [ $i -lt $((10 * (3 * TIMEOUT_S + 10))) ] || { pgrep -ax "$(basename "$BIN")"; fail "training processes still alive $((3 * TIMEOUT_S + 10)) s after the cut"; }
    sleep 0.1
  done
  took=$(($(date +%s) - cut))
  # mpirun may wait on the unreachable daemon: restore the link so it can end.
  "$NETNS" link 2 up
  timeout 60 sh -c "wait $job" 2>/dev/null || kill $job 2>/dev/null || true
  for r in 0 1 2 3; do
    grep -q "timed out" "$WORK/rank-$r.log" 2>/dev/null ||
      { cat "$WORK/run.err" "$WORK"/rank-*.log; fail "rank $r did not report dszero's timeout"; }
  done
  cat "$WORK"/rank-*.log | grep -v "#[0-9]" && fail "an error does not name the collective and its sequence number"
  echo "ok: link cut: all 4 ranks stopped with timeout errors within ${took} s (DSZ_COMM_TIMEOUT=${TIMEOUT_S}):"
  cat "$WORK"/rank-*.log | sed 's/^/    /' | cut -c1-200
  saved=$(tail -n 1 "$WORK/run.out" | sed 's/saved step //')
  DSZ_COMM_TIMEOUT=60 timeout 120 mpirun $LOCAL "$BIN" 2 fp32 - --steps 2 --load "$ck" >"$WORK/load.out" 2>&1 ||
    { cat "$WORK/load.out"; fail "the last checkpoint does not load"; }
  grep -q "loaded step $saved" "$WORK/load.out" || { cat "$WORK/load.out"; fail "loaded another step than $saved"; }
  echo "ok: the last checkpoint (step $saved) loads and training continues"
}

case "$WHAT" in
  parity) parity ;;
  linkfail) linkfail ;;
  all) parity; linkfail ;;
  *) echo "usage: $0 TRAIN_DUMP [parity|linkfail|all]" >&2; exit 2 ;;
esac
