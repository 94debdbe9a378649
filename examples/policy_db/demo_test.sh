#!/usr/bin/env bash
# CTest check of the policy_db demo: the same calls as tools/run-demo, with their output
# checked. Usage: demo_test.sh POLICY_DB_BINARY POLICY_FILE
set -euo pipefail
demo=$1 file=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect OUTPUT REGEX
  grep -Eq -- "$2" <<<"$1" || fail "output lacks /$2/"
}

out=$("$demo" --generate "$file" --rules 5000)
echo "$out"
[ "$(grep -c '^allow ' "$file")" -eq 5000 ] || fail "generated file does not have 5000 rules"
grep -q '^#' "$file" || fail "generated file has no comment"
cp "$file" "$file.again"
"$demo" --generate "$file.again" --rules 5000 >/dev/null
cmp -s "$file" "$file.again" || fail "generation is not deterministic"

out=$("$demo" "$file" --query "alice /etc/shadow read" --query "bob /srv/www write")
echo "$out"
expect "$out" '^loaded 5000 rules'
expect "$out" "locked: pool 'policy' holds 5000 rules"
expect "$out" 'protected: yes'
expect "$out" 'memfd:pmalloc:policy'
expect "$out" '^query alice /etc/shadow read -> DENY$'
expect "$out" '^query bob /srv/www write -> ALLOW$'

rc=0
out=$("$demo" "$file" --tamper 2>&1) || rc=$?
echo "$out"
[ "$rc" -eq 0 ] || fail "--tamper exited $rc: an attack was not stopped"
expect "$out" 'child: write succeeded; query alice /etc/shadow read -> ALLOW'
expect "$out" 'the write was stopped: child killed by SIGSEGV'
# pmalloc's fault report (docs/fault-reports.md) names the pool and the writer.
expect "$out" "^pmalloc: write to (protected|sealed) pool 'policy' at .* by .*AttackerWrite"
expect "$out" '^after the attacks, in this process: query alice /etc/shadow read -> DENY$'

# Bad input is reported, not crashed on.
printf 'allow a b read\nallow broken\n' >"$file.bad"
rc=0
"$demo" "$file.bad" --query "a b read" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "a malformed policy should exit 2, got $rc"
echo "policy_db demo: OK"
