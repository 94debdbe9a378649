#!/usr/bin/env bash
# pmalloc-inspect against a live process with a protected pool, a sealed pool, a writable
# pool, a protected and a writable pool, and no pool: JSON checked field by field (python3),
# --expect-locked exit codes, the table, bad usage. As root, also on another user's process.
# Usage: inspect_test.sh PMALLOC_INSPECT INSPECT_TARGET
set -euo pipefail
inspect=$1 target=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts the target in mode $1 (optionally as the user in $run_as), holding its stdin open
# on fd 3; sets $pid once it printed "ready".
start() {
  rm -f "$scratch/fifo" "$scratch/out"
  mkfifo "$scratch/fifo"
  chmod 666 "$scratch/fifo"
  if [ -n "${run_as:-}" ]; then
    setpriv --reuid="$run_as" --regid="$run_as" --clear-groups "$target" "$1" \
      <"$scratch/fifo" >"$scratch/out" &
  else
    "$target" "$1" <"$scratch/fifo" >"$scratch/out" &
  fi
  pid=$!
  exec 3>"$scratch/fifo"
  for _ in $(seq 100); do
    grep -q ready "$scratch/out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "target $1 exited early"
    sleep 0.1
  done
  fail "target $1 not ready"
}
stop() { exec 3>&-; wait "$pid"; }

# check MODE EXPECTED_RC: --json --expect-locked, exit code and JSON facts for MODE.
check() {
  local mode=$1 want_rc=$2 rc=0
  start "$mode"
  "$inspect" --json --expect-locked "$pid" >"$scratch/json" 2>"$scratch/err" || rc=$?
  [ "$rc" = "$want_rc" ] || fail "$mode: --expect-locked exit $rc, want $want_rc: $(cat "$scratch/err")"
  "$inspect" "$pid" >"$scratch/table" || fail "$mode: table exit $?"
  stop
  python3 - "$mode" "$pid" "$scratch/json" <<'PY' || fail "$mode: $(cat "$scratch/json")"
import json, sys
mode, pid, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
doc = json.load(open(path))
assert doc["pid"] == pid, doc["pid"]
pools = {p["name"]: p for p in doc["pools"]}
t = doc["totals"]
areas = [a for p in doc["pools"] for a in p["areas"]]
assert t["areas"] == len(areas) and t["pools"] == len(pools)
assert t["size"] == sum(a["size"] for a in areas)
assert t["resident"] == sum(a["resident"] for a in areas)
for a in areas:
    assert a["start"].startswith("0x") and int(a["start"], 16) % 4096 == 0, a
    assert a["size"] > 0 and a["size"] % 4096 == 0 and 0 <= a["resident"] <= a["size"], a
    assert not (a["protected"] and a["writable"]), a
def only(name, **want):
    assert name in pools, (name, list(pools))
    for a in pools[name]["areas"]:
        for k, v in want.items():
            assert a[k] == v, (name, k, a)
if mode == "none":
    assert pools == {} and doc["window"] is None and t["locked"] is False
    sys.exit(0)
assert doc["window"] is not None and doc["window"]["size"] >= 1 << 30
w0 = int(doc["window"]["start"], 16)
for a in areas:
    assert w0 < int(a["start"], 16) < w0 + doc["window"]["size"], a
if mode in ("protected", "mixed"):
    only("inspect-protected", protected=True, sealed=False, writable=False)
if mode == "sealed":
    only("inspect-sealed", protected=True, sealed=True, writable=False)
    assert t["sealed_bytes"] == t["size"]
if mode in ("writable", "mixed"):
    # Unnamed on kernels without CONFIG_ANON_VMA_NAME, named where the kernel allows it.
    name = "inspect-writable" if "inspect-writable" in pools else "(unnamed)"
    only(name, protected=False, writable=True)
    # 100 blocks of 1000 bytes were written: at least that much is resident.
    assert sum(a["resident"] for a in pools[name]["areas"]) >= 100000
    assert t["writable_areas"] >= 1 and t["locked"] is False
if mode in ("protected", "sealed"):
    assert t["locked"] is True and t["writable_areas"] == 0
PY
  echo "ok: $mode (exit $rc)"
}

check protected 0
check sealed 0
check writable 1
check mixed 1
check none 1

start mixed
"$inspect" "$pid" >"$scratch/table"
grep -q "^pool inspect-protected$" "$scratch/table" || fail "table lacks the pool"
grep -q "^locked: no (" "$scratch/table" || fail "table does not say not locked"
stop

# As root, another user's process: smaps is readable without ptrace.
if [ "$(id -u)" = 0 ]; then
  run_as=65534 start protected
  owner=$(stat -c %u "/proc/$pid")
  [ "$owner" = 65534 ] || fail "target runs as $owner, not nobody"
  "$inspect" --expect-locked "$pid" >/dev/null || fail "root on nobody's process: exit $?"
  stop
  echo "ok: another user's process"
else
  echo "skipped: another user's process (needs root)"
fi

# Bad usage and unreadable /proc: one line on stderr, exit 2.
for args in "--bogus 1" "" "abc" "1 2" "999999999"; do
  rc=0
  # shellcheck disable=SC2086
  "$inspect" $args >/dev/null 2>"$scratch/err" || rc=$?
  [ "$rc" = 2 ] || fail "'$args': exit $rc, want 2"
  [ "$(wc -l <"$scratch/err")" = 1 ] || fail "'$args': not one line: $(cat "$scratch/err")"
done
"$inspect" --help | grep -q -- "--expect-locked" || fail "--help"
echo "inspect test: OK"
