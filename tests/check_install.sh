#!/bin/sh
# Installs the build into a temporary prefix and builds a small consumer
# twice: with pkg-config (dszero.pc) and with CMake's find_package(dszero).
# Both must compile, link and run (dsz_version).
set -eu
build=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
lib=$(ls -d "$tmp"/prefix/lib* | head -1)
cat > "$tmp/use.c" <<'C'
#include <dszero.h>
#include <stdio.h>
int main(void) { printf("dszero %s\n", dsz_version()); return dsz_version_number() == DSZ_VERSION_NUMBER ? 0 : 1; }
C
PKG_CONFIG_PATH=$(find "$tmp/prefix" -name dszero.pc -exec dirname {} \;)
export PKG_CONFIG_PATH
cc -std=c99 "$tmp/use.c" $(pkg-config --cflags --libs dszero) -o "$tmp/use_pc" -Wl,-rpath,"$(pkg-config --variable=libdir dszero)"
"$tmp/use_pc"
mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.22)
project(use C)
find_package(dszero CONFIG REQUIRED)
add_executable(use_cmake ../use.c)
target_link_libraries(use_cmake PRIVATE dszero::dszero)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_RPATH="$lib" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
"$tmp/cm/build/use_cmake"
echo "installed package works through pkg-config and find_package(dszero)"
