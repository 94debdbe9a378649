#!/usr/bin/env bash
# Runs a real program with and without LD_PRELOAD=<shim> and fails unless stdout, exit
# status and stderr (minus the shim's own report lines) are identical, and the shim was
# really loaded: PMALLOC_CONF names an unknown key, which the shim reports on stderr when it
# starts (an exit-time report would not do: coreutils close stderr at exit).
# Usage: [SHIM_CONF=key:value,...] real_programs.sh <path/to/libpmalloc.so> <case> [program]
#   SHIM_CONF is added to the shim run's PMALLOC_CONF (e.g. disable:true).
#   case: ls | bash | python | perl | gxx | git | sqlite | program (runs [program])
set -u
shim=$1
case_name=$2
program=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LC_ALL=C TZ=UTC HOME=$work

make_tree() {  # deterministic directory tree with fixed timestamps
  local root=$1
  for d in a b c d; do
    for e in 1 2 3; do
      mkdir -p "$root/$d/sub$e/deeper"
      for f in $(seq 1 20); do
        printf 'file %s %s %s\n' "$d" "$e" "$f" > "$root/$d/sub$e/f$f.txt"
        head -c $((f * 37)) /dev/zero > "$root/$d/sub$e/deeper/z$f"
      done
    done
  done
  find "$root" -exec touch -h -d '2024-01-02 03:04:05' {} +
}

# run_case <dir>: runs the case in <dir> (a fresh directory per run).
run_case() {
  local dir=$1
  cd "$dir" || return 99
  case $case_name in
    ls)
      make_tree tree
      ls -lR --time-style=+%s tree ;;
    bash)
      bash -c 'declare -A h; s=""
        for i in $(seq 1 3000); do a[$i]=$((i * i)); s="$s$i,"; h[k$i]=$((i % 7)); done
        echo "${#a[@]} ${#s} ${#h[@]}"
        for i in $(seq 1 200); do x=$(echo "$i" | tr 0-9 a-j); t+=$x; done
        echo "$t" | md5sum
        printf "%s\n" "${a[@]}" | sort -n | tail -3' ;;
    python)
      python3 - <<'PY'
import json, subprocess, threading, hashlib
data = {"k%d" % i: [i, str(i) * (i % 13), {"nested": list(range(i % 17))}] for i in range(20000)}
text = json.dumps(data, sort_keys=True)
back = json.loads(text)
print(len(text), hashlib.sha256(text.encode()).hexdigest(), back == data)
results = [None] * 8
def work(n):
    acc = {}
    for i in range(30000):
        acc[str(i * n)] = [i] * (i % 5)
    results[n] = sum(len(v) for v in acc.values())
threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(results)
out = subprocess.run(["python3", "-c", "import sys; print(sum(range(10**6)))"],
                     capture_output=True, text=True, check=True)
print(out.stdout.strip())
print(subprocess.check_output(["sort"], input=b"b\nc\na\n").decode().split())
PY
      ;;
    perl)
      perl -e 'my %h; for my $i (1..200000) { $h{"key$i"} = [$i, "v" x ($i % 20)]; }
        my @k = sort { $h{$a}[0] <=> $h{$b}[0] } keys %h; print scalar(@k), " $k[0] $k[-1]\n";
        my $s = join(",", map { $_ * 2 } 1..50000); $s =~ s/(\d+)/<$1>/g; print length($s), "\n";
        my @w = map { scalar reverse $_ } split /,/, $s; print scalar(@w), "\n";' ;;
    gxx)
      cat > t.cc <<'CC'
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>
template <class T> struct Tree { std::map<std::string, std::vector<T>> m; };
int main() {
  Tree<int> t;
  for (int i = 0; i < 1000; ++i) t.m[std::to_string(i % 37)].push_back(i);
  long s = 0;
  for (auto& [k, v] : t.m) s += std::accumulate(v.begin(), v.end(), 0L) * (long)k.size();
  auto p = std::make_shared<std::string>("compiled under the shim");
  std::cout << s << " " << *p << "\n";
}
CC
      g++ -std=c++17 -O2 -Wall -o t t.cc && ./t ;;
    git)
      export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t \
        GIT_COMMITTER_EMAIL=t@example.com GIT_AUTHOR_DATE='2024-01-02T03:04:05Z' \
        GIT_COMMITTER_DATE='2024-01-02T03:04:05Z' GIT_CONFIG_NOSYSTEM=1
      git init -q -b main repo && cd repo || return 98
      for i in $(seq 1 30); do
        seq 1 $((i * 100)) > "file$i.txt"
        git add "file$i.txt" && git commit -q -m "commit $i"
      done
      git checkout -q -b topic && sed -i 's/^1/one/' file*.txt && git commit -qam topic
      git checkout -q main && git merge -q --no-edit topic
      git log --oneline | head -5
      git diff --stat HEAD~5 HEAD | tail -1
      git gc -q && git fsck --no-progress
      git rev-parse HEAD ;;
    sqlite)
      sqlite3 :memory: <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t SELECT x, x % 97, 'name-' || x, zeroblob(x % 300) FROM c;
CREATE INDEX t_grp ON t(grp, name);
SELECT grp, count(*), sum(length(payload)), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), group_concat(name, '') IS NOT NULL FROM t;
SELECT name FROM t WHERE grp = 42 ORDER BY name DESC LIMIT 3;
SQL
      ;;
    program)
      "$program" ;;
    *)
      echo "unknown case $case_name" >&2; return 97 ;;
  esac
}

mkdir -p "$work/plain" "$work/shim"
(run_case "$work/plain") > "$work/plain.out" 2> "$work/plain.err"
plain_rc=$?
(export LD_PRELOAD=$shim PMALLOC_CONF=shim_loaded:1${SHIM_CONF:+,$SHIM_CONF}; run_case "$work/shim") \
  > "$work/shim.out" 2> "$work/shim.err"
shim_rc=$?

fail=0
if [ "$plain_rc" != "$shim_rc" ]; then
  echo "exit status differs: plain $plain_rc, shim $shim_rc"; fail=1
fi
if ! diff -u "$work/plain.out" "$work/shim.out"; then
  echo "stdout differs"; fail=1
fi
grep -v '^pmalloc: ' "$work/shim.err" > "$work/shim.err.filtered"
if ! diff -u "$work/plain.err" "$work/shim.err.filtered"; then
  echo "stderr differs"; fail=1
fi
if ! grep -q "^pmalloc: PMALLOC_CONF: unknown key 'shim_loaded'" "$work/shim.err"; then
  echo "the shim was not loaded (no report of the unknown key)"; fail=1
fi
if [ "$plain_rc" != 0 ]; then
  echo "the program failed even without the shim (status $plain_rc)"; cat "$work/plain.err"; fail=1
fi
echo "$case_name: $(wc -l < "$work/plain.out") lines of output, plain=$plain_rc shim=$shim_rc"
exit $fail
