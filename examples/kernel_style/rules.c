/* The rule module: a rule table built at start-up, then only read (see README.md). */
#include "rules.h"

#include <errno.h>
#include <pmalloc/compat/cache.h>
#include <pmalloc/compat/slab.h>
#include <stdio.h>
#include <string.h>

#include "list.h"

struct log_entry {
  struct list_head list;
  char *msg;
};

static struct list_head rule_list __ro_after_init = LIST_HEAD_INIT(rule_list);
static unsigned int nr_rules __ro_after_init;
static LIST_HEAD(log_list);
static unsigned int nr_log;

int rules_add(const char *pattern, enum rule_action action) {
  struct rule *r;

  r = kzalloc(sizeof(*r), GFP_LOCKABLE);
  if (!r) return -ENOMEM;
  r->pattern = kstrdup(pattern, GFP_LOCKABLE);
  r->stats = kzalloc(sizeof(*r->stats), GFP_KERNEL);
  if (!r->pattern || !r->stats) {
    kfree(r->pattern);
    kfree(r->stats);
    kfree(r);
    return -ENOMEM;
  }
  r->action = action;
  list_add_tail(&r->list, &rule_list);
  nr_rules++;
  return 0;
}

int rules_load(const char *spec) {
  char *buf, *item, *save = NULL;
  int err = 0;

  buf = kstrdup(spec, GFP_KERNEL);
  if (!buf) return -ENOMEM;
  for (item = strtok_r(buf, ",", &save); item && !err; item = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(item, ':');

    if (!colon) {
      err = -EINVAL;
      break;
    }
    *colon = '\0';
    if (!strcmp(item, "allow"))
      err = rules_add(colon + 1, RULE_ALLOW);
    else if (!strcmp(item, "deny"))
      err = rules_add(colon + 1, RULE_DENY);
    else
      err = -EINVAL;
  }
  kfree(buf);
  return err;
}

static int rule_matches(const struct rule *r, const char *name) {
  size_t len = strlen(r->pattern);

  if (len && r->pattern[len - 1] == '*') return !strncmp(r->pattern, name, len - 1);
  return !strcmp(r->pattern, name);
}

static void log_match(const struct rule *r, const char *name) {
  struct log_entry *e = kmalloc(sizeof(*e), GFP_KERNEL);
  size_t len = strlen(name) + strlen(r->pattern) + 32;

  if (!e) return;
  e->msg = kmalloc(len, GFP_KERNEL);
  if (!e->msg) {
    kfree(e);
    return;
  }
  snprintf(e->msg, len, "%s matched '%s': %s", name, r->pattern,
           r->action == RULE_ALLOW ? "allow" : "deny");
  list_add_tail(&e->list, &log_list);
  nr_log++;
}

enum rule_action rules_check(const char *name) {
  struct rule *r;

  list_for_each_entry(r, &rule_list, list) {
    if (rule_matches(r, name)) {
      r->stats->hits++;
      log_match(r, name);
      return r->action;
    }
  }
  return RULE_NONE;
}

struct rule *rules_first(void) {
  return list_empty(&rule_list) ? NULL : list_entry(rule_list.next, struct rule, list);
}

unsigned int rules_count(void) { return nr_rules; }
unsigned int rules_log_count(void) { return nr_log; }

const char *rules_last_log(void) {
  return list_empty(&log_list) ? NULL : list_entry(log_list.prev, struct log_entry, list)->msg;
}

struct list_head *rules_head(void) {
  return &rule_list;
}
