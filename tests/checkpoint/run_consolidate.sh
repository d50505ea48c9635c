#!/bin/sh
# run_consolidate.sh MPIEXEC CKPT_CONSOLIDATE DSZ READER VENV
# Two ranks write checkpoints (ckpt_consolidate.c), `dsz consolidate` turns
# them into safetensors files, and READER (read_safetensors.py) reads them
# back with torch and with the safetensors package (VENV's python when the
# fixture could install it there; exit 77 = skipped when it could not).
set -eu
mpiexec=$1 writer=$2 dsz=$3 reader=$4 venv=$5
dir=$(mktemp -d /tmp/dsz_consolidate.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$mpiexec" -np 2 --bind-to none "$writer" "$dir"
"$dsz" consolidate "$dir/fp32" -o "$dir/fp32.safetensors"
"$dsz" consolidate "$dir/fp32" --tag global_step5 --dtype fp16 -o "$dir/fp32_as_fp16.safetensors"
"$dsz" consolidate "$dir/bf16" --dtype bf16 -o "$dir/bf16.safetensors"
# A missing checkpoint: an error naming it, and no output file.
if "$dsz" consolidate "$dir/none" -o "$dir/none.safetensors" 2>"$dir/err"; then
  echo "FAIL: consolidating a missing checkpoint succeeded"; exit 1
fi
grep -q "$dir/none/latest does not exist" "$dir/err" || { cat "$dir/err"; exit 1; }
[ ! -e "$dir/none.safetensors" ] || { echo "FAIL: output left behind"; exit 1; }
python=/usr/bin/python3
[ -x "$venv/bin/python" ] && python="$venv/bin/python"
OMP_NUM_THREADS=1 "$python" "$reader" "$dir"
