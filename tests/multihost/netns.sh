#!/bin/sh
# netns.sh -- simulated hosts for multi-host tests: network namespaces joined
# by veth pairs, on one machine.
#
#   netns.sh up N        N hosts dsz-h1..dsz-hN, namespace dsz-hI, address
#                        10.77.0.I/24 on a bridge-free star: every host has a
#                        veth to the hub namespace dsz-hub, which bridges them
#   netns.sh down        removes every namespace, link and /etc/hosts line
#                        this script made (safe to run twice, or after a
#                        failed `up`)
#   netns.sh link H up|down     cuts or restores host H's link
#   netns.sh shape H RATE DELAY  tc on host H's link (e.g. 1gbit 1ms; netem,
#                                or tbf without the delay where the kernel
#                                lacks netem); RATE "off" removes it
#   netns.sh exec H CMD...       runs CMD inside host H
#
# Host names dsz-h1..dsz-hN are added to /etc/hosts (marked, removed by
# down) so that Open MPI can be given names; tests/multihost/rsh.sh is the
# rsh agent that starts Open MPI's daemons inside the namespaces. Needs root
# (CAP_NET_ADMIN) and iproute2.
set -eu
MARK="# dszero-netns"
HUB=dsz-hub

up() {
  n=$1
  down >/dev/null 2>&1 || true
  ip netns add $HUB
  ip -n $HUB link add br0 type bridge
  ip -n $HUB link set br0 up
  ip -n $HUB link set lo up
  i=1
  while [ "$i" -le "$n" ]; do
    ns=dsz-h$i
    ip netns add $ns
    ip -n $ns link set lo up
    ip link add veth-h$i netns $ns type veth peer name port-h$i netns $HUB
    ip -n $ns addr add 10.77.0.$i/24 dev veth-h$i
    ip -n $ns link set veth-h$i up
    ip -n $HUB link set port-h$i master br0
    ip -n $HUB link set port-h$i up
    echo "10.77.0.$i dsz-h$i $MARK" >> /etc/hosts
    i=$((i + 1))
  done
}

down() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^dsz-'); do
    # processes still inside (a hung test) are killed with their namespace
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if grep -q "$MARK" /etc/hosts 2>/dev/null; then
    # /etc/hosts may be a bind mount: rewrite it in place, never replace it
    grep -v "$MARK" /etc/hosts > /tmp/dsz-hosts.$$ || true
    cat /tmp/dsz-hosts.$$ > /etc/hosts
    rm -f /tmp/dsz-hosts.$$
  fi
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  link) ip -n dsz-hub link set port-h"$2" "$3" ;;
  shape)
    ip netns exec dsz-h"$2" tc qdisc del dev veth-h"$2" root 2>/dev/null || true
    if [ "$3" != off ]; then
      # netem gives rate and delay; kernels without sch_netem get tbf (rate only)
      if ! ip netns exec dsz-h"$2" tc qdisc add dev veth-h"$2" root handle 1: netem delay "$4" rate "$3" 2>/dev/null; then
        echo "netns.sh: no netem in this kernel: shaping host $2 to $3 with tbf, without the $4 delay" >&2
        ip netns exec dsz-h"$2" tc qdisc add dev veth-h"$2" root handle 1: tbf rate "$3" burst 256kb latency 100ms
      fi
    fi ;;
  exec) h=$2; shift 2; exec ip netns exec dsz-h"$h" "$@" ;;
  *) echo "usage: $0 up N | down | link H up|down | shape H RATE DELAY | exec H CMD..." >&2; exit 2 ;;
esac
