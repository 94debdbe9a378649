#!/usr/bin/env bash
# Runs one misuse program and checks its row of expected.txt: the signal it dies by and
# one exact line of its stderr. Usage: run_misuse.sh TABLE NAME PROGRAM [key=value...]
set -u
table=$1 name=$2 prog=$3
shift 3
row=$(grep -E "^$name[[:space:]]" "$table") || { echo "no row '$name' in $table"; exit 1; }
read -r _ signal _ line <<<"$row"
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$prog" >"$out" 2>"$err"
rc=$?
# <key> in the line: first from the arguments, then from the program's key=value output.
while IFS='=' read -r key value; do
  [ -n "$key" ] && line=${line//<$key>/$value}
done < <(printf '%s\n' "$@"; grep -E '^[a-z_]+=' "$out")
got=none
[ "$rc" -gt 128 ] && got=SIG$(kill -l $((rc - 128)))
fail=0
if [ "$got" != "$signal" ]; then
  echo "FAIL $name: expected death by $signal, got exit status $rc ($got)"
  fail=1
fi
if ! grep -qxF -- "$line" "$err"; then
  echo "FAIL $name: stderr has no line"
  echo "  $line"
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "--- stdout:"; cat "$out"; echo "--- stderr:"; cat "$err"
  exit 1
fi
echo "ok $name: $signal, $line"
