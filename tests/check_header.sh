#!/bin/sh
# The public header must compile on its own as C99 and as C++ with every
# warning an error (tests/CMakeLists.txt runs this).
set -eu
inc=$1; cc=$2; cxx=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#include <dszero.h>\nint main(void) { return dsz_version() == 0; }\n' > "$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/h.c" -o "$tmp/c.o"
"$cc" -std=c11 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/h.c" -o "$tmp/c11.o"
"$cxx" -std=c++11 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/h.cpp" -o "$tmp/cpp.o"
"$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror -I"$inc" -c "$tmp/h.cpp" -o "$tmp/cpp17.o"
echo "dszero.h compiles as C99, C11, C++11 and C++17 with -Wall -Wextra -pedantic -Werror"
