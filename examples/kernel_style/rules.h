/* A small firewall-like rule module written in kernel style. The rule table is built at
 * start-up and only read afterwards; hit counters and the match log keep changing. */
#ifndef KERNEL_STYLE_RULES_H_
#define KERNEL_STYLE_RULES_H_

#include "list.h"

enum rule_action { RULE_NONE = 0, RULE_ALLOW = 1, RULE_DENY = 2 };

struct rule_stats {
  unsigned long hits;
};

struct rule {
  struct list_head list;
  char *pattern; /* exact name, or a prefix ending in '*' */
  enum rule_action action;
  struct rule_stats *stats; /* writable: counters change after lockdown */
};

/* Parses "allow:ssh,deny:telnet*,..." and appends the rules. 0 or -errno. */
int rules_load(const char *spec);
/* Appends one rule. 0 or -errno. */
int rules_add(const char *pattern, enum rule_action action);
/* The action of the first matching rule (RULE_NONE if none); counts the hit and logs it. */
enum rule_action rules_check(const char *name);
/* The first rule, or NULL. */
struct rule *rules_first(void);
/* Number of rules, and of log entries written by rules_check. */
unsigned int rules_count(void);
unsigned int rules_log_count(void);
/* The newest log line, or NULL. */
const char *rules_last_log(void);
/* The head of the rule list (a static, __ro_after_init). */
struct list_head *rules_head(void);

#endif /* KERNEL_STYLE_RULES_H_ */
