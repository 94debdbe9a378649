/* The port's proof: after lockdown a write into the rules (the structs and strings
 * allocated with GFP_LOCKABLE, and the __ro_after_init list head) kills the writer with
 * SIGSEGV, observed from a forked child; hit counters and the log (GFP_KERNEL) keep
 * working. Exit status 0 on success; each failed check prints a line and fails the run. */
#include <errno.h>
#include <pmalloc/compat/slab.h>
#include <pmalloc/pmalloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "list.h"
#include "rules.h"

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* Runs fn in a forked child; returns the signal that killed it, or 0 if it returned. */
static int killed_by(void (*fn)(void)) {
  int status = 0;
  pid_t pid;

  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    fn();
    _exit(0);
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void write_action(void) { rules_first()->action = RULE_ALLOW; }
static void write_pattern(void) { rules_first()->pattern[0] = 'X'; }
static void write_stats_pointer(void) { rules_first()->stats = NULL; }
static void write_list_head(void) { rules_head()->next = rules_head(); }
static void add_rule_after_lockdown(void) { rules_add("late", RULE_ALLOW); }
static void count_hit(void) { rules_first()->stats->hits++; }

int main(void) {
  struct rule *r;
  int n = 0;

  CHECK(rules_load("deny:telnet,allow:ssh,allow:http*") == 0);
  CHECK(rules_count() == 3);
  r = rules_first();
  CHECK(r != NULL);
  if (!r) return 1;
  /* Where the port put things: rules and strings in the lockable pool, counters on the heap. */
  list_for_each_entry(r, rules_head(), list) {
    CHECK(pmalloc_pool_of(r) == pmalloc_default_pool());
    CHECK(pmalloc_pool_of(r->pattern) == pmalloc_default_pool());
    CHECK(pmalloc_pool_of(r->stats) == NULL);
    n++;
  }
  CHECK(n == 3);
  CHECK(killed_by(write_action) == 0); /* writable before lockdown (in a child: no change) */

  CHECK(pmalloc_lockdown(0) == 0);
  CHECK(pmalloc_is_protected(rules_first()) == 1);
  CHECK(pmalloc_is_protected(rules_first()->pattern) == 1);
  CHECK(killed_by(write_action) == SIGSEGV);
  CHECK(killed_by(write_pattern) == SIGSEGV);
  CHECK(killed_by(write_stats_pointer) == SIGSEGV);
  CHECK(killed_by(write_list_head) == SIGSEGV);
  CHECK(killed_by(add_rule_after_lockdown) == SIGSEGV);
  CHECK(killed_by(count_hit) == 0);

  /* The writable parts keep working, and the rules still read correctly. */
  CHECK(rules_check("telnet") == RULE_DENY);
  CHECK(rules_check("http-alt") == RULE_ALLOW);
  CHECK(rules_check("ssh") == RULE_ALLOW);
  CHECK(rules_check("ssh") == RULE_ALLOW);
  CHECK(rules_check("gopher") == RULE_NONE);
  CHECK(rules_first()->stats->hits == 1);
  CHECK(rules_log_count() == 4);
  CHECK(rules_last_log() && strcmp(rules_last_log(), "ssh matched 'ssh': allow") == 0);
  CHECK(rules_count() == 3);
  r = rules_first();
  CHECK(strcmp(r->pattern, "telnet") == 0 && r->action == RULE_DENY);

  if (failures) {
    fprintf(stderr, "kernel_style_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("kernel_style_test: all checks passed\n");
  return 0;
}
