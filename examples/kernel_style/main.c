/* kernel_style: loads a rule table, locks it down, then serves lookups. Usage:
 *   kernel_style [rules] [name...]   e.g.  kernel_style "allow:ssh,deny:tel*" ssh telnet ftp
 */
#include <pmalloc/pmalloc.h>
#include <stdio.h>

#include "list.h"
#include "rules.h"

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "allow:ssh,allow:http*,deny:telnet,deny:*";
  static const char *const kDefaultNames[] = {"ssh", "https", "telnet", "gopher"};
  int err = rules_load(spec);

  if (err) {
    fprintf(stderr, "kernel_style: bad rules '%s' (%d)\n", spec, err);
    return 1;
  }
  /* Start-up is over: the rules (GFP_LOCKABLE) and the __ro_after_init statics become
   * read-only; hit counters and the log (GFP_KERNEL) stay writable. */
  if (pmalloc_lockdown(0) != 0) {
    perror("kernel_style: pmalloc_lockdown");
    return 1;
  }
  printf("%u rules, locked down (rules in %s memory)\n", rules_count(),
         pmalloc_is_protected(rules_first()) ? "read-only" : "writable");
  for (int i = 0; i < (argc > 2 ? argc - 2 : 4); ++i) {
    const char *name = argc > 2 ? argv[i + 2] : kDefaultNames[i];
    rules_check(name);
    printf("%s\n", rules_last_log() ? rules_last_log() : "(no match)");
  }
  return 0;
}
