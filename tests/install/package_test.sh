#!/usr/bin/env bash
# Builds the Debian package (cpack -G DEB), checks its control fields and contents, installs
# it with `dpkg -i` into a scratch root, and runs the installed tools from there: the
# installed pmalloc-run preloads the installed libpmalloc.so into a real program, and the
# installed pmalloc-inspect reads a live process.
#
# Why a scratch root (dpkg --root) and not `dpkg -i` into /: CI runs as root on the real
# machine, where an install into / would leave files in /usr, register the package in the
# host's dpkg database and conflict with a later real install. `dpkg --root` runs the same
# unpack and configure steps against an empty database; the dependency check is therefore
# forced there and done instead against the host with `apt-get install -s` (which resolves
# the Depends line against the real package database without installing anything). The
# postinst's ldconfig runs chrootless, on the host, and rebuilds its cache unchanged.
# Usage: package_test.sh BUILD_DIR SCRATCH_DIR ENV_PROBE INSPECT_TARGET
set -euo pipefail
build=$1 scratch=$2 probe=$3 target=$4
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$scratch"
mkdir -p "$scratch"
(cd "$build" && cpack -G DEB -B "$scratch/pkg" >"$scratch/cpack.log" 2>&1) ||
  { cat "$scratch/cpack.log" >&2; fail "cpack -G DEB"; }
deb=$(ls "$scratch"/pkg/pmalloc_*.deb)
echo "package: $(basename "$deb")"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for dep in libjemalloc2 libabsl libstdc++6 libc6; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep"
done
dpkg-deb -c "$deb" | awk '{print $6}' >"$scratch/contents"
for f in ./usr/bin/pmalloc-run ./usr/bin/pmalloc-inspect ./usr/include/pmalloc/pmalloc.h \
  ./usr/include/pmalloc/pmalloc.hpp ./usr/lib/pkgconfig/pmalloc.pc \
  ./usr/lib/cmake/pmalloc/pmallocConfig.cmake; do
  grep -qxF "$f" "$scratch/contents" || fail "package lacks $f"
done
grep -q '^\./usr/lib/.*libpmalloc\.so\.0$' "$scratch/contents" || fail "package lacks libpmalloc.so.0"
apt-get install -s --no-install-recommends "$deb" >"$scratch/apt.log" 2>&1 ||
  { cat "$scratch/apt.log" >&2; fail "Depends not satisfiable on this system"; }
grep -q '^Inst pmalloc ' "$scratch/apt.log" || { cat "$scratch/apt.log" >&2; fail "apt-get -s"; }

root=$scratch/root
mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
touch "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" >"$scratch/dpkg.log" 2>&1 ||
  { cat "$scratch/dpkg.log" >&2; fail "dpkg -i"; }
dpkg --root="$root" -s pmalloc | grep -qx "Status: install ok installed" || fail "not installed"

# The installed pmalloc-run, as a user would call it: the library it preloads is the
# installed one, found relative to the installed script.
lib=$(dirname "$(find "$root" -name libpmalloc.so)")
lib=$(realpath "$lib")/libpmalloc.so
"$root/usr/bin/pmalloc-run" --lockdown main -- /bin/true 2>"$scratch/err" ||
  fail "pmalloc-run -- /bin/true: $(cat "$scratch/err")"
"$root/usr/bin/pmalloc-run" --lockdown main -- "$probe" >"$scratch/out" 2>"$scratch/err" ||
  fail "pmalloc-run -- probe: $(cat "$scratch/err")"
grep -qxF "LD_PRELOAD=$lib" "$scratch/out" || fail "$(cat "$scratch/out"), want $lib"
grep -qxF "pmalloc: $lib" "$scratch/out" || fail "installed library not loaded: $(cat "$scratch/out")"
grep -qxF "pool allocation: ok" "$scratch/out" || fail "no pool allocation"
grep -qxF "PMALLOC_CONF=lockdown:main" "$scratch/out" || fail "$(grep PMALLOC_CONF "$scratch/out")"
"$root/usr/bin/pmalloc-run" --help | grep -q -- --learn || fail "installed --help"

# The installed pmalloc-inspect on a live process with a protected pool.
mkfifo "$scratch/fifo"
"$target" protected <"$scratch/fifo" >"$scratch/target.out" &
pid=$!
exec 3>"$scratch/fifo"
for _ in $(seq 100); do grep -q ready "$scratch/target.out" && break; sleep 0.1; done
rc=0
"$root/usr/bin/pmalloc-inspect" --json --expect-locked "$pid" >"$scratch/json" || rc=$?
exec 3>&-
wait "$pid"
[ "$rc" = 0 ] || fail "installed pmalloc-inspect --expect-locked: exit $rc"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["totals"]["locked"]' \
  "$scratch/json" || fail "JSON: $(cat "$scratch/json")"
echo "package test: OK"
