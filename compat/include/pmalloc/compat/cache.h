/* pmalloc/compat/cache.h — __ro_after_init for userspace: globals that start-up code
 * writes and pmalloc_lockdown() then makes read-only (and seals with
 * PMALLOC_LOCKDOWN_SEAL).
 *
 *   static struct config cfg __ro_after_init = { .limit = 10 };
 *   ... fill cfg during start-up ...
 *   pmalloc_lockdown(0);   // from now on a write to cfg kills the process (SIGSEGV)
 *
 * How: the variable goes into the section "pmalloc_ro_after_init". The assembler
 * directives below give that section, in every object file that includes this header,
 * page alignment at its start and padding to a whole page at its end (a ".balign" in a
 * later subsection lands after all the variables). The linker concatenates those
 * page-multiple pieces, so in every module (executable or shared object) the section
 * [__start_, __stop_) is whole pages that hold nothing but __ro_after_init variables.
 * A constructor emitted here registers that range once per module
 * (pmalloc_ro_after_init_register), which checks the page alignment at run time and aborts
 * with a fixed message if it does not hold: a variable is never silently left writable and
 * no unrelated data is ever made read-only.
 *
 * Rules and limits:
 *  - only for writable, non-const objects with static storage; not for C++ inline
 *    variables or templates (their comdat sections are not padded: the run-time check
 *    aborts if one ends up last).
 *  - a shared object's __ro_after_init variable must not be accessed directly by the
 *    executable (keep it static or hidden): the executable would get a writable copy of it
 *    (copy relocation). Registration detects this (x86-64) and aborts with
 *    "pmalloc: __ro_after_init variable '<name>' of '<module>' was copied into the
 *    executable (copy relocation) ...".
 *  - LTO may move variables away from these directives (-flto-partition=max does): use
 *    no LTO or -flto-partition=one for such modules; otherwise start-up aborts (checked).
 *  - cost: up to one page of padding per object file that defines such variables; one
 *    registration per module at load time. A module that registers is never unloaded
 *    (dlclose keeps it: its pages stay in the lockdown set).
 *  - a module loaded after pmalloc_lockdown() is protected when its constructor runs, so
 *    its own later constructors can no longer write these variables.
 *  - with -DPMALLOC_LOCKABLE=0, __ro_after_init is empty: plain writable globals.
 */
#ifndef PMALLOC_COMPAT_CACHE_H_
#define PMALLOC_COMPAT_CACHE_H_

#include <pmalloc/compat/gfp.h> /* PMALLOC_LOCKABLE */

#ifdef __cplusplus
extern "C" {
#endif

/* Registers [start, stop) — one module's pmalloc_ro_after_init section — for lockdown:
 * pins the module (never unloaded) and calls pmalloc_register_lockdown_range. A second call
 * for the same start does nothing. start == stop (or NULL): nothing to do.
 * Aborts, with one of these fixed messages, rather than leave a variable writable or
 * protect unrelated data:
 *   "pmalloc: not whole pages: __ro_after_init section <start>-<stop> of '<module>'"
 *   "pmalloc: cannot register __ro_after_init section <start>-<stop> of '<module>'"
 *   "pmalloc: __ro_after_init variable '<name>' of '<module>' was copied into the
 *    executable (copy relocation) and would stay writable: make it static or hidden"
 * Called by the constructor below; returns 0. Thread-safe; cost: one dladdr, dlopen and
 * scan of the executable's dynamic relocations per module.
 */
PMALLOC_EXPORT int pmalloc_ro_after_init_register(void *start, void *stop);

#ifdef __cplusplus
} /* extern "C" */
#endif

#if PMALLOC_LOCKABLE && defined(__GNUC__) && defined(__ELF__)

#define PMALLOC_RO_AFTER_INIT __attribute__((section("pmalloc_ro_after_init")))

/* Subsection 0 (the variables) starts page-aligned; subsection 1 only aligns, which pads
 * the end of subsection 0 to a page. An object file with no variables gets an empty
 * section. The page size assumed here, 4096, is checked at run time. */
__asm__(
    ".pushsection pmalloc_ro_after_init,\"aw\",@progbits\n\t.balign 4096\n\t.popsection\n\t"
    ".pushsection pmalloc_ro_after_init,1\n\t.balign 4096\n\t.popsection");

/* Hidden: each module sees its own section (undefined weak: 0 when it has none). */
extern char __start_pmalloc_ro_after_init[] __attribute__((weak, visibility("hidden")));
extern char __stop_pmalloc_ro_after_init[] __attribute__((weak, visibility("hidden")));

__attribute__((constructor, used)) static void pmalloc_ro_after_init_ctor_(void) {
  pmalloc_ro_after_init_register(__start_pmalloc_ro_after_init, __stop_pmalloc_ro_after_init);
}

#else
#define PMALLOC_RO_AFTER_INIT
#endif

#ifndef __ro_after_init
#define __ro_after_init PMALLOC_RO_AFTER_INIT
#endif

#endif /* PMALLOC_COMPAT_CACHE_H_ */
