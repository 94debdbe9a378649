// policy_db: the pmalloc demo. Loads an access-control policy into a pmalloc pool, locks it
// down, answers queries, and (--tamper) shows an attacker's write into the locked policy
// being stopped by the MMU; (--serve) keeps answering from reader threads and reloads the
// policy on SIGHUP into the same locked, write-rare pool (docs/write-rare.md).
//
//   policy_db --generate FILE --rules N          write a deterministic policy of N rules
//   policy_db FILE --query "subj obj perm" ...   load, lock, answer (ALLOW/DENY)
//   policy_db FILE --tamper                      load, lock, attack in forked children
//   policy_db FILE --serve [--query ...]         load, lock, serve; SIGHUP reloads FILE,
//                                                SIGTERM/SIGINT stop
//   options: --no-seal  lock with mprotect only (default: also mseal(2) where supported)
//
// Exit status: 0 success (for --tamper: every attack was stopped; for --serve: no reader
// ever got a wrong answer), 1 an attack succeeded or a reader answered wrong, 2 usage or
// input error.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pmalloc/pmalloc.hpp"
#include "policy.h"

namespace {

using policy_db::Policy;

struct Args {
  std::string generate;
  size_t rules = 5000;
  std::string file;
  std::vector<std::string> queries;
  bool tamper = false;
  bool serve = false;
  bool seal = true;
};

int Usage(const char* msg) {
  std::fprintf(stderr,
               "policy_db: %s\nusage: policy_db --generate FILE [--rules N]\n"
               "       policy_db FILE [--no-seal] --query \"subject object perm\" ...\n"
               "       policy_db FILE [--no-seal] --tamper\n"
               "       policy_db FILE [--no-seal] --serve [--query \"subject object perm\"] ...\n",
               msg);
  return 2;
}

bool ParseArgs(int argc, char** argv, Args* args, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--generate" && has_value) {
      args->generate = argv[++i];
    } else if (a == "--rules" && has_value) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(argv[++i], &end, 10);
      if (*end != '\0' || n == 0 || n > 100000000) {
        *error = "--rules needs a number between 1 and 100000000";
        return false;
      }
      args->rules = n;
    } else if (a == "--query" && has_value) {
      args->queries.push_back(argv[++i]);
    } else if (a == "--tamper") {
      args->tamper = true;
    } else if (a == "--serve") {
      args->serve = true;
    } else if (a == "--no-seal") {
      args->seal = false;
    } else if (!a.empty() && a[0] != '-' && args->file.empty()) {
      args->file = a;
    } else {
      *error = "bad argument '" + a + "'";
      return false;
    }
  }
  if (args->generate.empty() && args->file.empty()) {
    *error = "no policy file";
    return false;
  }
  if (args->file.empty() == false && args->queries.empty() && !args->tamper && !args->serve) {
    *error = "nothing to do: give --query, --tamper or --serve";
    return false;
  }
  return true;
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string Kib(size_t bytes) { return absl::StrFormat("%.1f KiB", bytes / 1024.0); }

// Prints the lines of /proc/self/maps that belong to the pool (named by pmalloc).
void PrintMaps(const char* pool_name) {
  std::ifstream maps("/proc/self/maps");
  const std::string tag = std::string("pmalloc:") + pool_name;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(tag) != std::string::npos) std::printf("  /proc/self/maps: %s\n", line.c_str());
  }
}

void PrintLocked(const pmalloc::Pool& pool, const Policy& policy) {
  const pmalloc_stats s = pool.stats();
  std::printf(
      "locked: pool '%s' holds %zu rules (%zu subject/object entries): hash table + strings\n"
      "        live %s in %zu allocations, mapped %s in %zu area(s); protected: %s, "
      "sealed: %s\n",
      pmalloc_pool_name(pool.get()), policy.rules(), policy.entries(), Kib(s.live_bytes).c_str(),
      s.live_allocs, Kib(s.mapped_bytes).c_str(), s.areas, s.is_protected ? "yes" : "NO",
      s.is_sealed ? "yes" : "no");
  PrintMaps(pmalloc_pool_name(pool.get()));
}

// Locks every pool (process-wide lockdown), sealing when asked and supported.
bool LockDown(const pmalloc::Pool& pool, const Policy& policy, bool seal) {
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status st = pmalloc::Lockdown({.seal = seal});
  const double ms = MsSince(t0);
  if (absl::IsUnimplemented(st)) {
    std::printf("lockdown: this kernel has no mseal(2): the pool is protected, not sealed\n");
  } else if (!st.ok()) {
    std::fprintf(stderr, "policy_db: lockdown failed: %s\n", st.ToString().c_str());
    return false;
  }
  std::printf("lockdown: pmalloc_lockdown(%s) took %.3f ms\n", seal ? "PMALLOC_LOCKDOWN_SEAL" : "0",
              ms);
  PrintLocked(pool, policy);
  return true;
}

int Query(const Policy& policy, const std::string& q) {
  std::istringstream fields(q);
  std::string subject, object, perm, extra;
  if (!(fields >> subject >> object >> perm) || (fields >> extra)) {
    std::fprintf(stderr, "policy_db: query '%s': expected \"subject object perm\"\n", q.c_str());
    return 2;
  }
  const uint32_t bit = policy_db::PermBit(perm);
  if (bit == 0) {
    std::fprintf(stderr, "policy_db: query '%s': unknown permission '%s'\n", q.c_str(),
                 perm.c_str());
    return 2;
  }
  std::printf("query %s %s %s -> %s\n", subject.c_str(), object.c_str(), perm.c_str(),
              policy.Allows(subject, object, bit) ? "ALLOW" : "DENY");
  return 0;
}

// Runs fn in a forked child and returns the wait status.
template <class Fn>
int InChild(Fn fn) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    const int rc = fn();
    std::fflush(stdout);
    _exit(rc);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string Describe(int status) {
  if (WIFSIGNALED(status)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(status));
    return abbrev != nullptr ? absl::StrCat("child killed by SIG", abbrev)
                             : absl::StrCat("child killed by signal ", WTERMSIG(status));
  }
  return absl::StrCat("child exited with status ", WEXITSTATUS(status));
}

// The attacker's primitive: a single write through a pointer into the policy. Volatile so
// the compiler cannot drop or reorder it.
// noinline: pmalloc's fault report names this function as the writer.
__attribute__((noinline)) void AttackerWrite(uint32_t* slot) {
  volatile uint32_t* p = slot;
  *p = *p | policy_db::kRead;
}

int Tamper(const pmalloc::Pool& pool, const Policy& policy, bool seal) {
  uint32_t* slot = policy.SlotOf("alice", "/etc/shadow");
  if (slot == nullptr) {
    std::fprintf(stderr, "policy_db: the policy has no 'alice /etc/shadow' rule to attack\n");
    return 2;
  }
  std::printf("target: rule 'alice /etc/shadow' (grants getattr, not read) at %p in pool '%s'\n",
              static_cast<void*>(slot), pmalloc_pool_name(pool.get()));
  Query(policy, "alice /etc/shadow read");

  // Control experiment: the same write before lockdown (in a child, so the real policy
  // is untouched) does turn DENY into ALLOW.
  std::printf("\nattack 0 (before lockdown, in a child): set the read bit of that rule\n");
  int status = InChild([&] {
    AttackerWrite(slot);
    std::printf("  child: write succeeded; ");
    Query(policy, "alice /etc/shadow read");
    return 0;
  });
  std::printf("  -> %s: an unlocked policy can be rewritten\n\n", Describe(status).c_str());

  if (!LockDown(pool, policy, seal)) return 2;
  const bool sealed = pool.stats().is_sealed != 0;
  bool stopped = true;

  std::printf("\nattack 1 (after lockdown, in a child): the same write\n");
  status = InChild([&] {
    std::printf("  child: writing to %p ...\n", static_cast<void*>(slot));
    std::fflush(stdout);
    AttackerWrite(slot);
    std::printf("  child: write succeeded; ");
    Query(policy, "alice /etc/shadow read");
    return 1;
  });
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
    std::printf("  -> the write was stopped: %s\n", Describe(status).c_str());
  } else {
    std::printf("  -> the write was NOT stopped: %s\n", Describe(status).c_str());
    stopped = false;
  }

  std::printf("\nattack 2 (after lockdown, in a child): mprotect the page writable, then write\n");
  status = InChild([&] {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    void* start = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(slot) & ~(page - 1));
    if (mprotect(start, page, PROT_READ | PROT_WRITE) != 0) {
      std::printf("  child: mprotect refused: %s\n", strerrorname_np(errno));
      return 0;
    }
    AttackerWrite(slot);
    std::printf("  child: mprotect and write succeeded; ");
    Query(policy, "alice /etc/shadow read");
    return 1;
  });
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::printf("  -> the attack was stopped: the pool is sealed\n");
  } else if (sealed) {
    std::printf("  -> the attack was NOT stopped although the pool is sealed: %s\n",
                Describe(status).c_str());
    stopped = false;
  } else {
    std::printf(
        "  -> the attack worked (%s): an unsealed pool only stops writes through pointers;\n"
        "     an attacker who can call mprotect needs sealing (see docs/threat-model.md)\n",
        Describe(status).c_str());
  }

  std::printf("\nafter the attacks, in this process: ");
  Query(policy, "alice /etc/shadow read");
  const bool intact = !policy.Allows("alice", "/etc/shadow", policy_db::kRead);
  if (!intact) stopped = false;
  std::printf("%s\n", stopped ? "result: every write into the locked policy was stopped"
                              : "result: the locked policy was changed");
  return stopped ? 0 : 1;
}

// Answers every --query, each line prefixed with the policy's generation.
int AnswerQueries(const Policy& policy, const std::vector<std::string>& queries) {
  int rc = 0;
  for (const std::string& q : queries) {
    std::printf("generation %llu: ", static_cast<unsigned long long>(policy.generation()));
    rc = std::max(rc, Query(policy, q));
  }
  return rc;
}

// Locks the policy, then answers queries from reader threads until SIGTERM/SIGINT; SIGHUP
// reloads the file into the same pool. The signals are taken by sigwait in this thread (a
// safe point: Reload allocates, which no signal handler may do), never by a handler.
int Serve(const pmalloc::Pool& pool, Policy& policy, const Args& args) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the readers start: they inherit it
  if (!LockDown(pool, policy, args.seal)) return 2;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> answered{0};
  std::atomic<uint64_t> wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        // Rules every generation of the demo policy has: a wrong answer means a reader saw
        // a torn or half-built table.
        const bool ok = policy.Allows("bob", "/srv/www", policy_db::kWrite) &&
                        !policy.Allows("www-data", "/srv/www", policy_db::kWrite);
        if (!ok) wrong.fetch_add(1, std::memory_order_relaxed);
        answered.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  int rc = AnswerQueries(policy, args.queries);
  std::printf("serving: pid %d, generation %llu, 2 reader threads; SIGHUP reloads %s\n",
              static_cast<int>(getpid()), static_cast<unsigned long long>(policy.generation()),
              args.file.c_str());
  std::fflush(stdout);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0 || sig != SIGHUP) break;
    const uint64_t before = answered.load();
    const auto t0 = std::chrono::steady_clock::now();
    const absl::Status st = policy.Reload(args.file, args.seal);
    const double ms = MsSince(t0);
    if (!st.ok()) {
      std::printf("reload failed, generation %llu kept: %s\n",
                  static_cast<unsigned long long>(policy.generation()), st.ToString().c_str());
    } else {
      std::printf(
          "reloaded: generation %llu, %zu rules in %.2f ms; the readers answered %llu queries "
          "meanwhile\n",
          static_cast<unsigned long long>(policy.generation()), policy.rules(), ms,
          static_cast<unsigned long long>(answered.load() - before));
      const bool locked =
          pmalloc_is_protected(policy.root()) && pmalloc_is_protected(policy.table());
      std::printf("        root and table locked: %s\n", locked ? "yes" : "NO");
      PrintLocked(pool, policy);
      rc = std::max(rc, AnswerQueries(policy, args.queries));
    }
    std::fflush(stdout);
  }
  stop.store(true);
  for (std::thread& t : readers) t.join();
  std::printf("stopped: the readers answered %llu queries, %llu wrong\n",
              static_cast<unsigned long long>(answered.load()),
              static_cast<unsigned long long>(wrong.load()));
  return wrong.load() != 0 ? 1 : rc;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, &args, &error)) return Usage(error.c_str());

  if (!args.generate.empty()) {
    const absl::Status st = policy_db::GeneratePolicy(args.generate, args.rules);
    if (!st.ok()) {
      std::fprintf(stderr, "policy_db: %s\n", st.ToString().c_str());
      return 2;
    }
    std::printf("generated %zu rules in %s\n", args.rules, args.generate.c_str());
    if (args.file.empty()) return 0;
  }

  // Write-rare and growable: --serve reloads into it after lockdown (Policy::Reload).
  absl::StatusOr<pmalloc::Pool> pool =
      pmalloc::Pool::Create("policy", {.growable = true, .write_rare = true});
  if (!pool.ok()) {
    std::fprintf(stderr, "policy_db: %s\n", pool.status().ToString().c_str());
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<Policy> policy = Policy::Load(args.file, pool->get());
  if (!policy.ok()) {
    std::fprintf(stderr, "policy_db: %s\n", policy.status().ToString().c_str());
    return 2;
  }
  std::printf("loaded %zu rules from %s into pmalloc pool 'policy' in %.2f ms\n", policy->rules(),
              args.file.c_str(), MsSince(t0));

  if (args.tamper) return Tamper(*pool, *policy, args.seal);
  if (args.serve) return Serve(*pool, *policy, args);

  if (!LockDown(*pool, *policy, args.seal)) return 2;
  int rc = 0;
  for (const std::string& q : args.queries) rc = std::max(rc, Query(*policy, q));
  // The pool keeps its live allocations (and may be sealed): it is released with the
  // process. Pool's destructor sees EBUSY/EPERM and leaves it in place.
  return rc;
}
