#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a consumer project
# against it: C++ through find_package(pmalloc CONFIG) (and a GoogleTest test through
# pmalloc::testing), C and C++ through pkg-config; then
# runs the installed pmalloc-run (it must preload the installed library) and pmalloc-inspect.
# Usage: install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 scratch=$3
rm -rf "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name pmalloc.pc | head -1)")
export PKG_CONFIG_PATH=$pcdir
echo "pkg-config --cflags --libs pmalloc: $(pkg-config --cflags --libs pmalloc)"
cmake -S "$src" -B "$scratch/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/build" -j2 >/dev/null
# Run against the installed library, not the build tree's.
export LD_LIBRARY_PATH=$(dirname "$(find "$prefix" -name 'libpmalloc.so' | head -1)")
ldd "$scratch/build/minimal_c" | grep -F "$prefix" >/dev/null ||
  { echo "minimal_c does not load the installed libpmalloc" >&2; exit 1; }
"$scratch/build/minimal_c"
"$scratch/build/minimal_cpp"
"$scratch/build/minimal_cpp_pc"
"$scratch/build/config_test" --gtest_brief=1  # pmalloc::testing: EXPECT_LOCKED, EXPECT_WRITE_FAULTS
# The installed pmalloc-run preloads the installed library (found relative to itself).
lib=$(realpath "$LD_LIBRARY_PATH")/libpmalloc.so
env -u LD_PRELOAD -u PMALLOC_CONF "$prefix/bin/pmalloc-run" --lockdown main -- /usr/bin/env |
  grep -qxF "LD_PRELOAD=$lib" || { echo "installed pmalloc-run does not preload $lib" >&2; exit 1; }
"$prefix/bin/pmalloc-inspect" --help >/dev/null
echo "install test: OK"
