# Shared by the server tests (sourced): a temp dir, a free port on 127.0.0.1, starting a
# server in the background with a chosen LD_PRELOAD/PMALLOC_CONF, stopping it by PID, and
# small helpers. Servers are only ever bound to 127.0.0.1 and always stopped (trap on exit).
set -u
SRV_WORK=$(mktemp -d /tmp/pmalloc-servers.XXXXXX)
chmod 755 "$SRV_WORK"  # nginx workers run as nobody when the test runs as root
SRV_PIDS=()

srv_cleanup() {
  local pid
  for pid in "${SRV_PIDS[@]}"; do srv_stop "$pid" >/dev/null 2>&1; done
  if [ -n "${SRV_KEEP:-}" ]; then echo "kept $SRV_WORK"; else rm -rf "$SRV_WORK"; fi
}
trap srv_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "== $*"; }

# free_port: a TCP port nobody listens on at 127.0.0.1 now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT (bash's /dev/tcp: no
# interpreter start-up on a loaded machine).
wait_port() {
  local port=$1 deadline=$((SECONDS + ${2:-10}))
  while [ $SECONDS -lt $deadline ]; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# srv_start NAME PRELOAD CONF CMD...: starts CMD in the background with LD_PRELOAD=PRELOAD and
# PMALLOC_CONF=CONF (either may be empty: unset), stdout+stderr to $SRV_WORK/NAME.out. Sets
# SRV_PID; records it for the exit trap.
srv_start() {
  local name=$1 preload=$2 conf=$3
  shift 3
  local envs=(env -u LD_PRELOAD -u PMALLOC_CONF)
  [ -n "$preload" ] && envs+=("LD_PRELOAD=$preload")
  [ -n "$conf" ] && envs+=("PMALLOC_CONF=$conf")
  "${envs[@]}" "$@" >"$SRV_WORK/$name.out" 2>&1 &
  SRV_PID=$!
  SRV_PIDS+=("$SRV_PID")
}

# srv_stop PID [SIG]: SIG (TERM) to PID, waits up to 10 s, then SIGKILL. Prints the wait
# status as `exit N` or `signal N`.
srv_stop() {
  local pid=$1 sig=${2:-TERM} i
  kill -s "$sig" "$pid" 2>/dev/null
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    # A zombie child of ours counts as gone once reaped below.
    [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" = Z ] && break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ] &&
    kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local rc=$?
  if [ $rc -gt 128 ]; then echo "signal $((rc - 128))"; else echo "exit $rc"; fi
}

# wait_dead PID SECONDS: until PID (not our child) is gone.
wait_dead() {
  local pid=$1 deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    [ -d /proc/$pid ] || return 0
    [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" = Z ] && return 0
    sleep 0.05
  done
  return 1
}

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' /proc/$1/status; }

# now_ms: monotonic milliseconds.
now_ms() { date +%s%3N; }

# procmem_write PID ADDR: writes one byte at ADDR (hex) through /proc/PID/mem; prints `ok` or
# the errno name.
procmem_write() {
  python3 - "$1" "$2" <<'PY'
import errno, sys
pid, addr = int(sys.argv[1]), int(sys.argv[2], 16)
try:
    with open('/proc/%d/mem' % pid, 'r+b', buffering=0) as f:
        f.seek(addr)
        f.write(b'X')
    print('ok')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# median A B C...: the median of numbers.
# locked_from_report REPORT PID WHAT: what pid PID's enforcing learn-report section in REPORT
# says is locked at lockdown (its last such line, after the colon); fails naming WHAT.
locked_from_report() {
  local section locked
  section=$(awk -v p="$2" '/^== pmalloc learn report: pid / {sec = ($6 == p ",")} sec' "$1")
  echo "$section" | grep -q '^mode: enforcing' || fail "no enforcing report section for $3"
  locked=$(echo "$section" | grep -a '^tagged, locked at lockdown: ' | tail -1 | cut -d: -f2-)
  [ -n "$locked" ] || fail "the report section for $3 does not say what is locked"
  echo "$locked"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# cpu_ns PID: nanoseconds all threads of PID have run on a CPU (schedstat). On a loaded
# machine the server's CPU time per load is far steadier than the wall-clock time.
cpu_ns() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }
