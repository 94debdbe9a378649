#!/bin/bash
# tag:startup and the rules file end to end, on an unmodified program (startup_probe.c)
# preloaded with libpmalloc.so. Usage: rules_test.sh MODE PROBE SHIM. Prints PASS or FAIL: ...
#   locked   constructor-time blocks (any thread, wrappers, calloc, strdup) are in the locked
#            default pool, a late one is not; a child's write dies with the report: site
#            line, rules line, SUMMARY
#   untagged without tag:startup nothing is tagged (the control)
#   exclude  the rules line a report printed, put in a rules file, leaves that site writable
#            in the next run (offsets stable across runs under ASLR); other sites stay locked
#   wrappers frames of wrappers are skipped: built-in (xmalloc), wrappers:, `wrapper` lines;
#            a module dlopen'ed at start-up names its sites (PROBE_DL: its path)
#   kernelwrite  read() into a locked tagged block: the EFAULT report has the site too
#   realloc  realloc of a locked tagged block moves it, free of one is fine, the program
#            goes on; the explicit API's realloc keeps EPERM
#   badrules a garbage rules file: one line per bad line naming file:line:value, the rest
#            applies; an unreadable one: one line; the program runs
set -u
mode=$1 probe=$2 shim=$3
work=$(mktemp -d /tmp/pmalloc-rules.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*"
  echo "--- output:"
  cat "$work/out" 2>/dev/null
  exit 1
}
# run CONF ARGS...: the probe's stdout+stderr into $work/out.
run() {
  local conf=$1
  shift
  env LD_PRELOAD="$shim" PMALLOC_CONF="$conf" "$probe" "$@" >"$work/out" 2>&1
}
has() { grep -qE -- "$1" "$work/out" || fail "no line matching '$1'"; }
hasnt() { ! grep -qE -- "$1" "$work/out" || fail "a line matching '$1'"; }
base=$(basename "$probe")
conf=tag:startup,lockdown:main

case $mode in
  locked)
    run $conf write A || fail "probe failed"
    for b in A B W C S T D; do has "^$b pool=default protected=1$"; done
    has "^late pool=none$"
    has "^write A: killed by signal 11$"
    has "^pmalloc: write to protected pool 'default' at 0x[0-9a-f]+ \(allocation 0x[0-9a-f]+\+1, 48 bytes, live\)"
    has "^pmalloc:   allocated at $base\+0x[0-9a-f]+ $base\+0x[0-9a-f]+ [^ ]+\+0x[0-9a-f]+ \(alloc_a < build < "
    has "^pmalloc:   thread [0-9]+ of pid [0-9]+; pool 'default' area 0x[0-9a-f]+\+[0-9]+ protected, after lockdown; this site made 1 allocations, 48 bytes$"
    has "^exclude $base\+0x[0-9a-f]+ $base\+0x[0-9a-f]+ [^ ]+\+0x[0-9a-f]+  # alloc_a < build < "
    has "^pmalloc: SUMMARY write-to-locked pool=default addr=0x[0-9a-f]+ block=0x[0-9a-f]+\+1 size=48 site=$base\+0x[0-9a-f]+,$base\+0x[0-9a-f]+,[^ ]+\+0x[0-9a-f]+ pc=0x[0-9a-f]+ tid=[0-9]+$"
    has "^done$"
    ;;
  untagged)
    run lockdown:main write A || fail "probe failed"
    for b in A B W C S T D; do has "^$b pool=none protected=0$"; done
    has "^write A: exit 0$"
    ;;
  exclude)
    run $conf write A || fail "probe failed"
    line=$(grep -E "^exclude $base\+" "$work/out") || fail "no rules line in the report"
    summary1=$(grep -E "^pmalloc: SUMMARY" "$work/out")
    run $conf write A || fail "probe failed"
    summary2=$(grep -E "^pmalloc: SUMMARY" "$work/out")
    # Same site in both runs, at different addresses (ASLR): the offsets are stable.
    [ "${summary1##* site=}" != "${summary2##* site=}" ] || fail "the runs had the same addresses (no ASLR?)"
    s1=${summary1##* site=} s2=${summary2##* site=}
    [ "${s1%% *}" = "${s2%% *}" ] || fail "site differs between runs: ${s1%% *} vs ${s2%% *}"
    printf '# made from a fault report\n%s\n' "$line" >"$work/app.rules"
    run "$conf,rules:$work/app.rules" write A || fail "probe failed"
    has "^A pool=none protected=0$"
    has "^write A: exit 0$"
    hasnt "^pmalloc: write to"
    for b in B W C S T; do has "^$b pool=default protected=1$"; done
    run "$conf,rules:$work/app.rules" write B || fail "probe failed"
    has "^write B: killed by signal 11$"
    has "\(alloc_b < build"
    # A one-frame rule (the first frame only) covers the site too.
    echo "exclude ${line#exclude }" | awk '{print $1, $2}' >"$work/one.rules"
    run "$conf,rules:$work/one.rules" || fail "probe failed"
    has "^A pool=none protected=0$"
    has "^B pool=default protected=1$"
    ;;
  wrappers)
    run $conf write W || fail "probe failed"
    has "^write W: killed by signal 11$"
    has "^pmalloc:   allocated at [^(]+\(alloc_w < build < "  # xmalloc (built in) skipped
    run $conf write C || fail "probe failed"
    has "^pmalloc:   allocated at [^(]+\(my_alloc < alloc_c < build\)"  # not a wrapper yet
    run "$conf,wrappers:my_alloc" write C || fail "probe failed"
    has "^pmalloc:   allocated at [^(]+\(alloc_c < build < "
    printf 'wrapper my_alloc\n' >"$work/w.rules"
    run "$conf,rules:$work/w.rules" write C || fail "probe failed"
    has "^pmalloc:   allocated at [^(]+\(alloc_c < build < "
    run $conf write S || fail "probe failed"
    has "^pmalloc:   allocated at [^(]+\(alloc_s < build < "  # strdup skipped
    # A module dlopen'ed after the table was built: rebuilt, named by its file name.
    [ -n "${PROBE_DL:-}" ] || fail "PROBE_DL not set"
    run $conf write D || fail "probe failed"
    has "^pmalloc:   allocated at $(basename "$PROBE_DL")\+0x[0-9a-f]+ $base\+0x[0-9a-f]+ [^(]+\(probe_dl_alloc < build < "
    ;;
  kernelwrite)
    run $conf read
    [ $? = 139 ] || fail "not killed by SIGSEGV"
    has "^pmalloc: read\(\) failed with EFAULT: the kernel cannot write to protected pool 'default'"
    has "^pmalloc:   allocated at [^(]+\(alloc_b < build < "
    has "^exclude $base\+0x[0-9a-f]+ $base\+0x[0-9a-f]+ [^ ]+\+0x[0-9a-f]+  # alloc_b < build"
    has "^pmalloc: SUMMARY kernel-write-to-locked via=read pool=default addr=0x[0-9a-f]+ block=0x[0-9a-f]+\+0 size=64 site=$base\+0x[0-9a-f]+,[^ ]+ pc=0x[0-9a-f]+ tid=[0-9]+$"
    hasnt "^read returned"
    ;;
  realloc)
    run $conf realloc || fail "probe failed (status $?)"
    has "^A pool=default protected=1$"
    has "^realloc moved=1 pool=none content=block A$"
    has "^realloc shrink moved=1 pool=none content=a strin$"
    has "^free of a locked block ok$"
    has "^api realloc null=1 EPERM=1$"
    has "^done$"
    ;;
  badrules)
    printf 'exclude %s+0x10\nexclude-modul libc.so.6\nexclude nomodule\ninclude a+0x1 b+0x2 c+0x3 d+0x4\nmodule x build-id nothex path /x\nexclude-module %s\n' \
      "$base" "$base" >"$work/bad.rules"
    run "$conf,rules:$work/bad.rules" || fail "probe failed"
    f=$work/bad.rules
    has "^pmalloc: rules $f:2: unknown directive 'exclude-modul', line ignored$"
    has "^pmalloc: rules $f:3: malformed site frame \(want module\+0xOFFSET\) 'nomodule', rule ignored$"
    has "^pmalloc: rules $f:4: more than 3 frames in 'include a\+0x1 b\+0x2 c\+0x3 d\+0x4', rule ignored$"
    has "^pmalloc: rules $f:5: malformed module line"
    [ "$(grep -c '^pmalloc: rules' "$work/out")" = 4 ] || fail "not one line per bad line"
    # Line 6 still applies: every site of the probe's own module stays untagged.
    has "^A pool=none protected=0$"
    has "^T pool=none protected=0$"
    has "^done$"
    run "$conf,rules:$work/missing.rules" || fail "probe failed"
    has "^pmalloc: rules $work/missing.rules: cannot read it \(errno 2\): no rules, every start-up allocation is tagged$"
    has "^A pool=default protected=1$"
    has "^done$"
    ;;
  *)
    fail "unknown mode $mode"
    ;;
esac
echo PASS
