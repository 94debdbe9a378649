#!/usr/bin/env bash
# nginx (Debian package) locked by pmalloc, end to end, on 127.0.0.1 only.
# Usage: nginx_test.sh MODE LIBPMALLOC ATTACK_HELPER [BINDIR]
#   MODE pool:     LD_PRELOAD=libpmalloc.so:attack_helper.so, PMALLOC_CONF=lockdown:main; the
#                  helper creates pool attack-target in the master before main (the library
#                  cannot yet tag nginx's own start-up heap): identical responses, the locked
#                  page cannot be written through /proc/PID/mem (EIO), the helper's write kills
#                  the worker by SIGSEGV with pmalloc's report, throughput.
#   MODE workflow: pmalloc-run --learn, then --rules (tag:startup, lockdown:serve), then
#                  pmalloc-inspect --expect-locked on the worker, the attack on an address of
#                  the worker's locked start-up heap, throughput. BINDIR holds the two tools.
# Prints a `servers-table:` line with the numbers for docs/servers.md.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mode=$1 lib=$2 attack=$3 bindir=${4:-}
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
nginx=/usr/sbin/nginx
[ -x $nginx ] || fail "no $nginx (apt-get install nginx-light)"
command -v curl >/dev/null || fail "no curl"
attack_sig=40
requests=${NGINX_REQUESTS:-2000}

port=$(free_port)
www=$SRV_WORK/www
mkdir -p "$www" "$SRV_WORK/tmp"
printf 'pmalloc nginx test\n' >"$www/index.html"
awk 'BEGIN {for (i = 0; i < 2500; i++) printf "line %06d of the big page\n", i}' \
  >"$www/big.html"  # 65000 bytes
chmod -R a+rX "$www"

# conf NAME: a minimal configuration; logs and pid under $SRV_WORK/NAME.*
conf() {
  local name=$1 user=
  [ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
  cat >"$SRV_WORK/$name.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
$user
pid $SRV_WORK/$name.pid;
error_log $SRV_WORK/$name.error.log notice;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path $SRV_WORK/tmp/body;
  proxy_temp_path $SRV_WORK/tmp/proxy;
  fastcgi_temp_path $SRV_WORK/tmp/fastcgi;
  uwsgi_temp_path $SRV_WORK/tmp/uwsgi;
  scgi_temp_path $SRV_WORK/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $www;
    location /echo { default_type text/plain; return 200 "uri=\$request_uri args=\$args\n"; }
  }
}
CONF
  echo "$SRV_WORK/$name.conf"
}

# start NAME PRELOAD CONF [PREFIX...]: starts nginx (through PREFIX, e.g. pmalloc-run ...),
# waits for the port; sets MASTER, WORKER, START_MS.
start() {
  local name=$1 preload=$2 pconf=$3
  shift 3
  local cfile t0
  cfile=$(conf "$name")
  t0=$(now_ms)
  srv_start "$name" "$preload" "$pconf" "$@" $nginx -p "$SRV_WORK" -e "$SRV_WORK/$name.error.log" -c "$cfile"
  MASTER=$SRV_PID
  wait_port "$port" 10 || { cat "$SRV_WORK/$name.out" "$SRV_WORK/$name.error.log"; fail "$name: nginx did not start"; }
  START_MS=$(($(now_ms) - t0))
  WORKER=
  local i
  for i in $(seq 1 100); do
    WORKER=$(pgrep -P "$MASTER" | head -1)
    [ -n "$WORKER" ] && break
    sleep 0.05
  done
  [ -n "$WORKER" ] || fail "$name: no worker process"
}

stop() { srv_stop "$MASTER" QUIT >/dev/null; }

# load: $requests requests over one keep-alive connection (static pages, a 404, a generated
# response); prints the sha256 of everything received, status lines included.
load() {
  local n=$((requests / 4))
  curl -s -i "http://127.0.0.1:$port/index.html?[1-$n]" "http://127.0.0.1:$port/big.html?[1-$n]" \
    "http://127.0.0.1:$port/missing?[1-$n]" "http://127.0.0.1:$port/echo?n=[1-$n]" |
    grep -av -E '^(Date|Server|Last-Modified|ETag):' | sha256sum | cut -c1-16
}

# timed_load: sets LOAD_MS (wall) and LOAD_CPU_MS (the server's CPU time) of one load.
timed_load() {
  local t0 c0
  t0=$(now_ms) c0=$(cpu_ns $WORKER)
  load >/dev/null
  LOAD_MS=$(($(now_ms) - t0)) LOAD_CPU_MS=$((($(cpu_ns $WORKER) - c0) / 1000000))
}

note "nginx $($nginx -v 2>&1 | sed 's/.*\///'), port $port, mode $mode, $requests requests a load"

# --- Baseline: no preload --------------------------------------------------------------------
start plain "" ""
want=$(load)
stop
note "plain responses $want"

# --- Learn (workflow mode) -------------------------------------------------------------------
rules=$SRV_WORK/nginx.rules
if [ "$mode" = workflow ]; then
  start learn "" "" "$bindir/pmalloc-run" --learn "$rules" --
  learn_pid=$WORKER
  got=$(load)
  [ "$got" = "$want" ] || fail "learn run: responses differ ($got vs $want)"
  stop
  [ -s "$rules" ] || { cat "$SRV_WORK/learn.error.log"; fail "learn run wrote no rules file"; }
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

# --- Enforcing run ---------------------------------------------------------------------------
addr_file=$SRV_WORK/attack.addr
export PMALLOC_ATTACK_FILE=$addr_file PMALLOC_ATTACK_SIGNAL=$attack_sig
if [ "$mode" = workflow ]; then
  start enforce "" "" env LD_PRELOAD="$attack" "$bindir/pmalloc-run" --rules "$rules" --
else
  export PMALLOC_ATTACK_POOL=$addr_file
  start enforce "$lib:$attack" "lockdown:main"
  unset PMALLOC_ATTACK_POOL
fi
got=$(load)
[ "$got" = "$want" ] || fail "enforcing run: responses differ ($got vs $want)"
note "enforcing responses identical ($got); master $MASTER, worker $WORKER"
grep -a 'pmalloc:' "$SRV_WORK/enforce.out" "$SRV_WORK/enforce.error.log" | head -5

if [ -n "$bindir" ] && [ -x "$bindir/pmalloc-inspect" ]; then
  "$bindir/pmalloc-inspect" --expect-locked "$WORKER" || fail "worker $WORKER is not locked"
  note "pmalloc-inspect --expect-locked $WORKER: 0"
  "$bindir/pmalloc-inspect" --json "$WORKER" >"$SRV_WORK/inspect.json"
elif [ "$mode" = workflow ]; then
  fail "no $bindir/pmalloc-inspect"
else
  note "pmalloc-inspect not in this tree: --expect-locked not checked"
fi
if [ "$mode" = workflow ]; then
  # SIGUSR1: pmalloc writes the worker's report section, then nginx's own handler reopens
  # the logs; the worker keeps serving.
  kill -s USR1 "$WORKER"
  for i in $(seq 1 100); do
    grep -aq "^== pmalloc learn report: pid $WORKER, .* at SIGUSR1 ==" "$rules.report" && break
    sleep 0.05
  done
  locked_enforce=$(locked_from_report "$rules.report" "$WORKER" "worker $WORKER after SIGUSR1") || exit 1
  note "worker $WORKER report (SIGUSR1): locked$locked_enforce"
  [ "$(load)" = "$want" ] || fail "worker after SIGUSR1: responses differ"
  grep -aq 'reopening logs' "$SRV_WORK/enforce.error.log" || fail "nginx did not reopen its logs on SIGUSR1"
  note "nginx's own SIGUSR1 handler ran (reopening logs); responses still identical"
  # The first protected area of the worker's start-up heap (the default pool).
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

# Outside write through /proc/PID/mem: refused by the read-only shared mapping.
res=$(procmem_write "$WORKER" "$target")
[ "$res" = EIO ] || fail "/proc/$WORKER/mem write at $target: $res (want EIO)"
note "/proc/$WORKER/mem write at $target: EIO"

# The helper's write inside the worker: SIGSEGV with pmalloc's report.
kill -s $attack_sig "$WORKER"
wait_dead "$WORKER" 10 || fail "worker $WORKER survived the write"
sleep 0.3
reports=$(grep -ah 'pmalloc: write to protected pool' "$SRV_WORK/enforce.out" "$SRV_WORK/enforce.error.log")
echo "$reports" | head -3
echo "$reports" | grep -q "at $target (allocation 0x" || fail "no pmalloc report naming the pool and allocation at $target"
grep -aq "worker process $WORKER exited on signal 11" "$SRV_WORK/enforce.error.log" ||
  { cat "$SRV_WORK/enforce.error.log"; fail "worker $WORKER did not die by SIGSEGV"; }
note "worker $WORKER died by SIGSEGV with the report"
stop
unset PMALLOC_ATTACK_FILE PMALLOC_ATTACK_SIGNAL

# --- Throughput, start-up time, RSS: no preload / jemalloc / pmalloc, 3 rounds interleaved ----
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
      rss[$cfg]+="$(( $(rss_kb "$MASTER") + $(rss_kb "$WORKER") )) "
      stop
    done
  done
  med_learn=0 cpu_learn=0 start_learn=0 rss_learn=0
  for cfg in $cfgs; do
    # shellcheck disable=SC2086
    m=$(median ${ms[$cfg]}) c=$(median ${cpu[$cfg]}) s=$(median ${startms[$cfg]})
    r=$(median ${rss[$cfg]})
    eval "med_$cfg=$m cpu_$cfg=$c start_$cfg=$s rss_$cfg=$r"
    echo "$cfg: load ms ${ms[$cfg]}(median $m), server CPU ms ${cpu[$cfg]}(median $c), start-up ms ${startms[$cfg]}(median $s), RSS KiB master+worker median $r"
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", a / b; else printf "n/a"}'; }
  if [ "$mode" = workflow ]; then
    learn_note="learn (fresh, no rules): load_ms=$med_learn cpu_ms=$cpu_learn startup_ms=$start_learn rss_kib=$rss_learn time learn/enforce (wall; cpu)=$(ratio "$med_learn" "$med_pmalloc"); $(ratio "$cpu_learn" "$cpu_pmalloc") time learn/jemalloc=$(ratio "$med_learn" "$med_jemalloc"); $(ratio "$cpu_learn" "$cpu_jemalloc")"
  fi
  echo "servers-table: nginx mode=$mode requests=$requests" \
    "wall: pmalloc/jemalloc=$(ratio "$med_jemalloc" "$med_pmalloc") pmalloc/plain=$(ratio "$med_plain" "$med_pmalloc") jemalloc/plain=$(ratio "$med_plain" "$med_jemalloc")" \
    "cpu: pmalloc/jemalloc=$(ratio "$cpu_jemalloc" "$cpu_pmalloc") pmalloc/plain=$(ratio "$cpu_plain" "$cpu_pmalloc") jemalloc/plain=$(ratio "$cpu_plain" "$cpu_jemalloc")" \
    "${locked:+learned: sites=$sites locked=$locked}" "${locked_enforce:+enforcing: locked$locked_enforce}" \
    "load_ms=$med_plain/$med_jemalloc/$med_pmalloc cpu_ms=$cpu_plain/$cpu_jemalloc/$cpu_pmalloc startup_ms=$start_plain/$start_jemalloc/$start_pmalloc rss_kib=$rss_plain/$rss_jemalloc/$rss_pmalloc" \
    "${learn_note:-}"
fi
echo "PASS"
