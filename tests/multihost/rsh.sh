#!/bin/sh
# rsh.sh -- Open MPI's rsh agent for the simulated hosts of netns.sh: called
# as `rsh.sh [ssh options] HOST COMMAND...`, it runs COMMAND inside HOST's
# network namespace (HOST is dsz-hI or its address 10.77.0.I).
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
host=$1
shift
case "$host" in
  10.77.0.*) ns=dsz-h${host##*.} ;;
  *) ns=$host ;;
esac
exec ip netns exec "$ns" /bin/sh -c "$*"
