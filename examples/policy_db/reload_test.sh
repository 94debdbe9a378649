#!/usr/bin/env bash
# CTest check of policy_db --serve: the policy is reloaded on SIGHUP into the same locked
# write-rare pool while reader threads keep answering (docs/write-rare.md).
# Usage: reload_test.sh POLICY_DB_BINARY POLICY_FILE
set -euo pipefail
demo=$1 file=$2
out=$file.serve.out
fail() { echo "FAIL: $*" >&2; cat "$out" >&2 || true; exit 1; }
wait_for() {  # wait_for REGEX: until the server's output has it (30 s at most)
  for _ in $(seq 300); do
    grep -Eq -- "$1" "$out" && return 0
    sleep 0.1
  done
  fail "no /$1/ in the server's output"
}

"$demo" --generate "$file" --rules 2000 >/dev/null
"$demo" "$file" --serve --query "alice /etc/shadow read" >"$out" 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
wait_for '^serving: pid'
grep -q '^generation 1: query alice /etc/shadow read -> DENY$' "$out" || fail "generation 1"

echo "allow alice /etc/shadow read" >>"$file"
kill -HUP $pid
wait_for '^reloaded: generation 2, 2001 rules'
wait_for '^generation 2: query alice /etc/shadow read -> ALLOW$'
grep -q 'root and table locked: yes' "$out" || fail "the new table is not locked"

printf 'allow broken\n' >"$file.bad"
cp "$file.bad" "$file"
kill -HUP $pid
wait_for '^reload failed, generation 2 kept'

kill -TERM $pid
rc=0
wait $pid || rc=$?
trap - EXIT
cat "$out"
[ "$rc" -eq 0 ] || fail "policy_db --serve exited $rc"
grep -Eq '^stopped: the readers answered [1-9][0-9]* queries, 0 wrong$' "$out" ||
  fail "the readers stopped or answered wrong"
# The readers went on during the reload.
grep -Eq 'the readers answered [1-9][0-9]* queries meanwhile' "$out" || fail "readers paused"
echo "policy_db reload: OK"
