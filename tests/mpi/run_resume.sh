#!/bin/sh
# run_resume.sh MPIEXEC NP BINARY -- ckpt_resume's two halves as two
# separate mpirun jobs: the second loads in processes that never trained.
set -eu
mpiexec=$1 np=$2 bin=$3
dir=$(mktemp -d /tmp/dsz_ckpt_resume.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$mpiexec" -np "$np" --bind-to none "$bin" save "$dir"
"$mpiexec" -np "$np" --bind-to none "$bin" resume "$dir"
