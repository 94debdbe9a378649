#!/usr/bin/env bash
# pmalloc-run: the exact LD_PRELOAD and PMALLOC_CONF it gives a probe program for each
# option, existing entries kept, the library found through a symlinked pmalloc-run, the
# command's exit status passed on, --help, and bad usage (one line, exit 2).
# Usage: run_test.sh PMALLOC_RUN ENV_PROBE LIBPMALLOC
set -euo pipefail
run=$(realpath "$1") probe=$(realpath "$2") lib=$(realpath "$(dirname "$3")")/$(basename "$3")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect WANT_CONF WANT_PRELOAD ARGS...: runs pmalloc-run ARGS -- probe.
expect() {
  local want_conf=$1 want_preload=$2
  shift 2
  "$run" "$@" -- "$probe" >out 2>err || fail "$*: exit $?: $(cat err)"
  grep -qxF "PMALLOC_CONF=$want_conf" out || fail "$*: $(grep PMALLOC_CONF out), want $want_conf"
  grep -qxF "LD_PRELOAD=$want_preload" out || fail "$*: $(grep LD_PRELOAD out), want $want_preload"
  grep -qxF "pmalloc: $lib" out || fail "$*: $(grep pmalloc: out), want $lib"
  grep -qxF "pool allocation: ok" out || fail "$*: no pool allocation"
  echo "ok: pmalloc-run $*"
}

unset PMALLOC_CONF LD_PRELOAD
expect "lockdown:serve" "$lib"
expect "tag:startup,rules:$scratch/app.rules,learn:true,report:$scratch/app.rules.report,lockdown:serve" \
  "$lib" --learn app.rules
mkdir sub && touch sub/in.rules
expect "tag:startup,rules:$scratch/sub/in.rules,report:/tmp/r.txt,lockdown:main,seal:true,stats_print:true,window:4G" \
  "$lib" --rules sub/in.rules --report /tmp/r.txt --lockdown main --seal --conf stats_print:true,window:4G
expect "tag:startup,rules:$scratch/x,learn:true,report:$scratch/rep,lockdown:after:500ms,a:1,b:2" \
  "$lib" --learn=x --report rep --lockdown=after:500ms --conf a:1 --conf b:2
for t in api signal:USR2 call:accept; do expect "lockdown:$t" "$lib" --lockdown "$t"; done
PMALLOC_CONF=stats_print:true LD_PRELOAD=libm.so.6 \
  expect "lockdown:main,stats_print:true" "$lib:libm.so.6" --lockdown main

# Through a symlink, as when bin/ is linked into PATH.
mkdir elsewhere && ln -s "$(realpath "$run")" elsewhere/pmalloc-run
run=$scratch/elsewhere/pmalloc-run expect "lockdown:serve" "$lib"

# The command's own exit status; 127 for a missing command.
rc=0; "$run" -- sh -c 'exit 7' 2>/dev/null || rc=$?
[ "$rc" = 7 ] || fail "exit status $rc, want 7"
rc=0; "$run" -- "$scratch/no-such-command" 2>/dev/null || rc=$?
[ "$rc" = 127 ] || fail "missing command: exit $rc, want 127"

"$run" --help >help || fail "--help exit $?"
for opt in --learn --rules --report --lockdown --seal --conf --help serve main api signal: \
  call: after:; do
  grep -q -- "$opt" help || fail "--help does not explain $opt"
done

for args in "--bogus -- true" "--learn" "--learn a --rules b -- true" "--lockdown nope -- true" \
  "--rules $scratch/missing -- true" "--seal" "--learn a,b -- true" "--conf"; do
  rc=0
  # shellcheck disable=SC2086
  "$run" $args >/dev/null 2>err || rc=$?
  [ "$rc" = 2 ] || fail "'$args': exit $rc, want 2"
  [ "$(wc -l <err)" = 1 ] || fail "'$args': not one line: $(cat err)"
  grep -q "^pmalloc-run: " err || fail "'$args': $(cat err)"
done
echo "run test: OK"
