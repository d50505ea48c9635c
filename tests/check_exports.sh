#!/bin/sh
# Every dynamic symbol that libdszero.so defines must start with dsz_.
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sed 's/@.*//')
bad=$(printf '%s\n' "$syms" | grep -v '^dsz_' | grep -v '^$' || true)
count=$(printf '%s\n' "$syms" | grep -c '^dsz_' || true)
if [ -n "$bad" ]; then
  echo "libdszero.so exports symbols outside the dsz_ prefix:"; printf '%s\n' "$bad"; exit 1
fi
if [ "$count" -lt 10 ]; then echo "only $count dsz_ symbols exported: the C API is missing"; exit 1; fi
echo "libdszero.so exports $count symbols, all dsz_*"
