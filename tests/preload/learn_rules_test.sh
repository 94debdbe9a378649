#!/usr/bin/env bash
# Learn mode end to end on an unmodified program (tests/preload/learn_rules_probe.c):
#  1. tag:startup,learn:true,rules:F: a write to a start-up allocation after lockdown is let
#     through, the run completes, F gets the exclude line for that site (AllocA) and not for
#     the unwritten one (AllocB), and the report says so;
#  2. tag:startup,rules:F (enforcing): the excluded site is not locked (its write goes
#     through), a write to the other start-up allocation still dies by SIGSEGV (forked
#     child) with pmalloc's report;
#  3. a second learn run adds nothing and keeps F's lines (union).
# Usage: learn_rules_test.sh LIBPMALLOC PROBE
set -u
lib=$1 probe=$2
dir=$(mktemp -d /tmp/learn_rules_test.XXXXXX)
trap 'rm -rf "$dir"' EXIT
rules=$dir/probe.rules
fail() { echo "FAIL: $*"; for f in "$dir"/*; do echo "--- $f"; cat "$f"; done; exit 1; }

env LD_PRELOAD="$lib" PMALLOC_CONF="tag:startup,learn:true,rules:$rules,lockdown:serve" \
  "$probe" write-a >"$dir/learn.out" 2>"$dir/learn.err" || fail "learn run exited $?"
grep -q '^wrote a: A$' "$dir/learn.out" || fail "learn run: the write did not complete"
[ -s "$rules" ] || fail "no rules file"
grep -Eq '^exclude learn_rules_probe\+0x[0-9a-f]+ .*# AllocA' "$rules" || fail "no exclude line for AllocA"
grep -q 'AllocB' "$rules" && fail "AllocB was never written but is excluded"
grep -Eq '^module learn_rules_probe build-id [0-9a-f]+ path /' "$rules" || fail "no module line"
grep -q '^== pmalloc learn report: pid ' "$rules.report" || fail "no report section"
grep -q '^written after lockdown: 1 sites, 1 blocks, 64 bytes of pool blocks' "$rules.report" || fail "report: written"
grep -q 'AllocA' "$rules.report" || fail "report: no AllocA"
echo "learned: $(grep -c '^exclude ' "$rules") exclude line(s)"
cp "$rules" "$dir/after-first-learn"

env LD_PRELOAD="$lib" PMALLOC_CONF="tag:startup,rules:$rules,lockdown:serve" \
  "$probe" write-b >"$dir/enforce.out" 2>"$dir/enforce.err" || fail "enforcing run exited $?"
grep -q '^wrote a: A$' "$dir/enforce.out" || fail "enforcing run: the excluded site's write failed"
grep -q '^child writing b: signal 11$' "$dir/enforce.out" || fail "the write to B was not stopped"
grep -q 'pmalloc: write to protected pool' "$dir/enforce.err" || fail "no pmalloc report for B"
cmp -s "$rules" "$dir/after-first-learn" || fail "the enforcing run changed the rules file"

env LD_PRELOAD="$lib" PMALLOC_CONF="tag:startup,learn:true,rules:$rules,lockdown:serve" \
  "$probe" write-a >"$dir/learn2.out" 2>"$dir/learn2.err" || fail "second learn run exited $?"
cmp -s "$rules" "$dir/after-first-learn" || fail "second learn run changed the rules file"
[ "$(grep -c '^== pmalloc learn report: pid ' "$rules.report")" -ge 3 ] || fail "report sections"
echo PASS
