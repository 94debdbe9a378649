#!/usr/bin/env bash
# redis-server (Debian package) locked by pmalloc, end to end, on 127.0.0.1 only.
# Usage: redis_test.sh MODE LIBPMALLOC ATTACK_HELPER [BINDIR]
#   MODE pool:     LD_PRELOAD=libpmalloc.so:attack_helper.so, PMALLOC_CONF=lockdown:main; the
#                  helper creates pool attack-target before main (the library cannot yet tag
#                  redis's own start-up heap). redis runs with crash-log-enabled no, because
#                  its own SIGSEGV handler, installed after main, would otherwise replace
#                  pmalloc's (keeping pmalloc's first is the library's job, tested in mode
#                  workflow, which keeps redis's handler).
#   MODE workflow: pmalloc-run --learn, then --rules (tag:startup, lockdown:serve), then
#                  pmalloc-inspect --expect-locked, the attack on the locked start-up heap.
# Both: identical replies to a run without preload, /proc/PID/mem write refused (EIO), the
# helper's write kills redis by SIGSEGV with pmalloc's report, throughput.
# Prints a `servers-table:` line with the numbers for docs/servers.md.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mode=$1 lib=$2 attack=$3 bindir=${4:-}
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
redis=/usr/bin/redis-server
for p in $redis /usr/bin/redis-cli /usr/bin/redis-benchmark; do
  [ -x $p ] || fail "no $p (apt-get install redis-server redis-tools)"
done
attack_sig=40
requests=${REDIS_REQUESTS:-10000}
port=$(free_port)

# start NAME PRELOAD CONF [PREFIX...]: sets PID, START_MS.
start() {
  local name=$1 preload=$2 pconf=$3 t0 extra=()
  shift 3
  [ "$mode" = pool ] && extra=(--crash-log-enabled no)
  mkdir -p "$SRV_WORK/$name"
  t0=$(now_ms)
  srv_start "$name" "$preload" "$pconf" "$@" $redis --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no --dir "$SRV_WORK/$name" --logfile "" "${extra[@]}"
  PID=$SRV_PID
  wait_port "$port" 10 || { cat "$SRV_WORK/$name.out"; fail "$name: redis did not start"; }
  START_MS=$(($(now_ms) - t0))
}
stop() { srv_stop "$PID" TERM >/dev/null; }

# replies: a fixed command script (strings, lists, hashes, sets, counters, big values); prints
# the sha256 of the replies.
replies() {
  awk 'BEGIN {
    for (i = 0; i < 300; i++) {
      v = ""; for (j = 0; j < i % 37; j++) v = v "v" i "-" j;
      printf "SET key:%d \"%s\"\n", i, v
      printf "RPUSH list:%d a%d b%d c%d\n", i % 10, i, i, i
      printf "HSET hash:%d f%d %d\n", i % 7, i, i * i
      printf "SADD set:%d m%d\n", i % 5, i % 50
      printf "INCRBY counter %d\n", i
    }
    for (i = 0; i < 300; i++) printf "GET key:%d\n", i
    for (i = 0; i < 10; i++) printf "LRANGE list:%d 0 -1\n", i
    for (i = 0; i < 7; i++) printf "HGETALL hash:%d\n", i
    for (i = 0; i < 5; i++) printf "SMEMBERS set:%d\n", i
    print "GET counter"; print "DBSIZE"; print "DEL key:1 key:2 key:3"; print "DBSIZE"
  }' | redis-cli -p "$port" 2>&1 | sed -E 's/^([0-9]+\) )+//' | sort >"$SRV_WORK/replies"
  # 1861 commands; the multi-bulk replies add lines. Too few means the server did not answer.
  [ "$(wc -l <"$SRV_WORK/replies")" -gt 1861 ] || { head "$SRV_WORK/replies" >&2; return 1; }
  echo "$(wc -l <"$SRV_WORK/replies") lines $(sha256sum <"$SRV_WORK/replies" | cut -c1-16)"
}
# timed_load: sets LOAD_MS (wall) and LOAD_CPU_MS (the server's CPU time) of one load.
timed_load() {
  local t0 c0
  t0=$(now_ms) c0=$(cpu_ns $PID)
  redis-benchmark -p "$port" -n "$requests" -q -t set,get >/dev/null
  LOAD_MS=$(($(now_ms) - t0)) LOAD_CPU_MS=$((($(cpu_ns $PID) - c0) / 1000000))
}

note "$($redis --version | cut -d' ' -f1-3), port $port, mode $mode, $requests requests a load"

start plain "" ""
want=$(replies) || fail "plain run: too few replies"
stop
note "plain replies $want"

rules=$SRV_WORK/redis.rules
if [ "$mode" = workflow ]; then
  start learn "" "" "$bindir/pmalloc-run" --learn "$rules" --
  learn_pid=$PID
  got=$(replies) || fail "too few replies"
  [ "$got" = "$want" ] || fail "learn run: replies differ ($got vs $want)"
  redis-benchmark -p "$port" -n "$requests" -q -t set,get 2>&1 | tr '\r' '\n' | grep 'per second'
  stop
  [ -s "$rules" ] || { cat "$SRV_WORK/learn.out"; fail "learn run wrote no rules file"; }
  [ -s "$rules.report" ] || fail "learn run wrote no report"
  sites=$(grep -c '^exclude ' "$rules")
  note "learned $sites excluded sites; the report's summary, one section per process:"
  grep -a -E '^(== pmalloc learn report|start-up heap|tagged|written after|stayed read-only)' "$rules.report"
  # The serving process's section (nginx: the worker; the master's start-up heap is the same
  # but it never writes it after lockdown).
  locked=$(awk -v p="$learn_pid" '/^== pmalloc learn report: pid / {sec = ($6 == p ",")} sec' "$rules.report" |
    grep -a -o 'protected with the learned rules: .*' | tail -1 | cut -d: -f2-)
  [ -n "$locked" ] || fail "the report has no section for pid $learn_pid saying how much of the start-up heap is locked"
  # SERVERS_RULES_OUT=DIR keeps them (examples/servers/ ships rules learned this way).
  [ -n "${SERVERS_RULES_OUT:-}" ] && cp "$rules" "$rules.report" "$SERVERS_RULES_OUT/"
fi

addr_file=$SRV_WORK/attack.addr
export PMALLOC_ATTACK_FILE=$addr_file PMALLOC_ATTACK_SIGNAL=$attack_sig
if [ "$mode" = workflow ]; then
  start enforce "" "" env LD_PRELOAD="$attack" "$bindir/pmalloc-run" --rules "$rules" --
else
  export PMALLOC_ATTACK_POOL=$addr_file
  start enforce "$lib:$attack" "lockdown:main"
  unset PMALLOC_ATTACK_POOL
fi
got=$(replies) || fail "too few replies"
[ "$got" = "$want" ] || fail "enforcing run: replies differ ($got vs $want)"
redis-benchmark -p "$port" -n "$requests" -q -t set,get 2>&1 | tr '\r' '\n' | grep 'per second'
note "enforcing replies identical ($got); pid $PID"

if [ -n "$bindir" ] && [ -x "$bindir/pmalloc-inspect" ]; then
  "$bindir/pmalloc-inspect" --expect-locked "$PID" || fail "redis $PID is not locked"
  note "pmalloc-inspect --expect-locked $PID: 0"
  "$bindir/pmalloc-inspect" --json "$PID" >"$SRV_WORK/inspect.json"
elif [ "$mode" = workflow ]; then
  fail "no $bindir/pmalloc-inspect"
else
  note "pmalloc-inspect not in this tree: --expect-locked not checked"
fi
if [ "$mode" = workflow ]; then
  python3 - "$SRV_WORK/inspect.json" >"$addr_file" <<'PY' || fail "no protected area in pmalloc-inspect --json"
import json, sys
d = json.load(open(sys.argv[1]))
areas = [a for p in d["pools"] if p["kind"] == "pool" for a in p["areas"] if a["protected"]]
print("0x%x" % (int(areas[0]["start"], 16) + 64))
PY
fi
[ -s "$addr_file" ] || fail "no target address"
target=$(cat "$addr_file")
note "target $target"

res=$(procmem_write "$PID" "$target")
[ "$res" = EIO ] || fail "/proc/$PID/mem write at $target: $res (want EIO)"
note "/proc/$PID/mem write at $target: EIO"

kill -s $attack_sig "$PID"
wait_dead "$PID" 10 || fail "redis $PID survived the write"
wait "$PID" 2>/dev/null
rc=$?
status="exit $rc"
[ $rc -gt 128 ] && status="signal $((rc - 128))"
reports=$(grep -ah 'pmalloc: write to protected pool' "$SRV_WORK/enforce.out")
echo "$reports" | head -3
[ "$status" = "signal 11" ] || { tail -30 "$SRV_WORK/enforce.out"; fail "redis ended by $status, not SIGSEGV"; }
echo "$reports" | grep -q "at $target (allocation 0x" || { tail -30 "$SRV_WORK/enforce.out"; fail "no pmalloc report naming the pool and allocation at $target"; }
note "redis $PID died by SIGSEGV with the report"
if [ "$mode" = workflow ]; then
  # What the enforcing run locks, from its exit report (the attacked process wrote none).
  start enforce2 "" "" "$bindir/pmalloc-run" --rules "$rules" --
  got=$(replies) || fail "too few replies"
  [ "$got" = "$want" ] || fail "second enforcing run: replies differ ($got vs $want)"
  stop
  locked_enforce=$(locked_from_report "$rules.report" "$PID" "pid $PID") || exit 1
  note "enforcing report of pid $PID: locked$locked_enforce"
fi
unset PMALLOC_ATTACK_FILE PMALLOC_ATTACK_SIGNAL

# SERVERS_TIMING=0 skips this (CMake sets it for mode pool when mode workflow measures).
if [ "${SERVERS_TIMING:-1}" = 1 ]; then
  declare -A ms cpu startms rss
  cfgs="plain jemalloc pmalloc"
  # Learn mode's own cost (workflow mode): a fresh learn run each round, no rules yet, so
  # every write to the start-up heap is recorded (the worst case).
  [ "$mode" = workflow ] && cfgs="$cfgs learn"
  for round in 1 2 3; do
    for cfg in $cfgs; do
      case $cfg in
        plain) start "t-$cfg" "" "" ;;
        jemalloc) start "t-$cfg" "$jemalloc" "" ;;
        pmalloc)
          if [ "$mode" = workflow ]; then start "t-$cfg" "" "" "$bindir/pmalloc-run" --rules "$rules" --
          else start "t-$cfg" "$lib" "lockdown:main"; fi ;;
        learn)
          rm -f "$SRV_WORK/t-learn.rules" "$SRV_WORK/t-learn.rules.report"
          start "t-$cfg" "" "" "$bindir/pmalloc-run" --learn "$SRV_WORK/t-learn.rules" -- ;;
      esac
      timed_load
      ms[$cfg]+="$LOAD_MS " cpu[$cfg]+="$LOAD_CPU_MS "
      startms[$cfg]+="$START_MS "
      rss[$cfg]+="$(rss_kb "$PID") "
      stop
    done
  done
  med_learn=0 cpu_learn=0 start_learn=0 rss_learn=0
  for cfg in $cfgs; do
    # shellcheck disable=SC2086
    m=$(median ${ms[$cfg]}) c=$(median ${cpu[$cfg]}) s=$(median ${startms[$cfg]})
    r=$(median ${rss[$cfg]})
    eval "med_$cfg=$m cpu_$cfg=$c start_$cfg=$s rss_$cfg=$r"
    echo "$cfg: load ms ${ms[$cfg]}(median $m), server CPU ms ${cpu[$cfg]}(median $c), start-up ms ${startms[$cfg]}(median $s), RSS KiB median $r"
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", a / b; else printf "n/a"}'; }
  if [ "$mode" = workflow ]; then
    learn_note="learn (fresh, no rules): load_ms=$med_learn cpu_ms=$cpu_learn startup_ms=$start_learn rss_kib=$rss_learn time learn/enforce (wall; cpu)=$(ratio "$med_learn" "$med_pmalloc"); $(ratio "$cpu_learn" "$cpu_pmalloc") time learn/jemalloc=$(ratio "$med_learn" "$med_jemalloc"); $(ratio "$cpu_learn" "$cpu_jemalloc")"
  fi
  echo "servers-table: redis mode=$mode requests=$requests" \
    "wall: pmalloc/jemalloc=$(ratio "$med_jemalloc" "$med_pmalloc") pmalloc/plain=$(ratio "$med_plain" "$med_pmalloc") jemalloc/plain=$(ratio "$med_plain" "$med_jemalloc")" \
    "cpu: pmalloc/jemalloc=$(ratio "$cpu_jemalloc" "$cpu_pmalloc") pmalloc/plain=$(ratio "$cpu_plain" "$cpu_pmalloc") jemalloc/plain=$(ratio "$cpu_plain" "$cpu_jemalloc")" \
    "${locked:+learned: sites=$sites locked=$locked}" "${locked_enforce:+enforcing: locked$locked_enforce}" \
    "load_ms=$med_plain/$med_jemalloc/$med_pmalloc cpu_ms=$cpu_plain/$cpu_jemalloc/$cpu_pmalloc startup_ms=$start_plain/$start_jemalloc/$start_pmalloc rss_kib=$rss_plain/$rss_jemalloc/$rss_pmalloc" \
    "${learn_note:-}"
fi
echo "PASS"
