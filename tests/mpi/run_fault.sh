#!/bin/sh
# run_fault.sh MPIEXEC NP BINARY MODE BOUND_S REGEX
# Runs a comm_fault mode under mpirun, bounded by BOUND_S seconds. Passes
# when the run ended in time (never a hang), no rank printed UNEXPECTED, and
# the output matches REGEX (our error, or mpirun's report of a dead rank).
mpiexec=$1 np=$2 bin=$3 mode=$4 bound=$5 regex=$6
out=$(timeout -k 5 "$bound" "$mpiexec" -np "$np" --bind-to none "$bin" "$mode" 2>&1)
rc=$?
printf '%s\n' "$out"
echo "mpirun exit status: $rc"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "FAIL: the job did not end within $bound s (hang)"
    exit 1
fi
if printf '%s\n' "$out" | grep -q UNEXPECTED; then
    echo "FAIL: a rank reported an unexpected outcome"
    exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq "$regex"; then
    echo "FAIL: output does not match: $regex"
    exit 1
fi
echo "PASS"
