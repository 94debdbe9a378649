/* Compiled three times by compat_fallback_*: as written before the port (GFP_KERNEL, no
 * __ro_after_init), and ported (GFP_LOCKABLE, cache.h and __ro_after_init) with the feature
 * off and on.
 * The port is one token per allocation and one annotation per static; with
 * -DPMALLOC_LOCKABLE=0 the object code must equal the unported one. */
#include <pmalloc/compat/slab.h>

#ifdef PORTED
#include <pmalloc/compat/cache.h> /* __ro_after_init: new in the port */
#define RULE_GFP GFP_LOCKABLE
#define RO_AFTER_INIT __ro_after_init
#else
#define RULE_GFP GFP_KERNEL
#define RO_AFTER_INIT
#endif

struct rule {
  struct rule *next;
  char *name;
  int action;
};

static struct rule *rules RO_AFTER_INIT;
static int max_rules RO_AFTER_INIT = 16;
int rule_count;

int add_rule(const char *name, int action) {
  if (rule_count >= max_rules) return -1;
  struct rule *r = kzalloc(sizeof(*r), RULE_GFP);
  if (!r) return -1;
  r->name = kstrdup(name, RULE_GFP);
  if (!r->name) {
    kfree(r);
    return -1;
  }
  r->action = action;
  r->next = rules;
  rules = r;
  rule_count++;
  return 0;
}

int *make_counters(size_t n) { return kcalloc(n, sizeof(int), GFP_KERNEL); }

int lookup(const char *name) {
  for (struct rule *r = rules; r; r = r->next) {
    const char *a = r->name, *b = name;
    while (*a && *a == *b) a++, b++;
    if (*a == *b) return r->action;
  }
  return 0;
}
