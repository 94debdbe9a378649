// A program that is NOT linked with libpmalloc and reaches its API through dlsym, as a
// plugin or an instrumented binary would, run under LD_PRELOAD=libpmalloc.so by CTest:
//   scope  — STL containers built in a scope come from the pool, free returns them;
//   main   — with PMALLOC_CONF=lockdown:main, data built by a constructor is read-only in
//            main (the __libc_start_main hook works preloaded, not only linked).
// Prints one line per fact and "probe done" when it ran to the end.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <map>
#include <string>
#include <vector>

namespace {

struct pmalloc_pool;
template <class F>
F Sym(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}
using CreateFn = pmalloc_pool* (*)(const char*, size_t, unsigned short, unsigned);
using PoolOfFn = pmalloc_pool* (*)(const void*);
using EnterFn = pmalloc_pool* (*)(pmalloc_pool*);
using ExitFn = void (*)(pmalloc_pool*);
using StrdupFn = char* (*)(pmalloc_pool*, const char*);
using IsProtectedFn = int (*)(const void*);

char* built_by_ctor = nullptr;
__attribute__((constructor)) void BuildBeforeMain() {
  auto create = Sym<CreateFn>("pmalloc_create_pool");
  auto dup = Sym<StrdupFn>("pstrdup");
  if (create != nullptr && dup != nullptr) built_by_ctor = dup(create("ctor", 0, 0, 0), "ctor");
}

int Scope() {
  auto create = Sym<CreateFn>("pmalloc_create_pool");
  auto pool_of = Sym<PoolOfFn>("pmalloc_pool_of");
  auto enter = Sym<EnterFn>("pmalloc_scope_enter");
  auto exit_scope = Sym<ExitFn>("pmalloc_scope_exit");
  if (!create || !pool_of || !enter || !exit_scope) return 1;
  pmalloc_pool* pool = create("scoped", 0, 0, 0);
  pmalloc_pool* prev = enter(pool);
  auto* m = new std::map<std::string, std::vector<int>>;
  for (int i = 0; i < 50; ++i) (*m)["a key long enough for the heap " + std::to_string(i)] = {i};
  exit_scope(prev);
  const bool in_pool = pool_of(m) == pool && pool_of(m->begin()->first.data()) == pool &&
                       pool_of(m->begin()->second.data()) == pool;
  std::string outside(100, 'x');
  printf("in_pool=%d outside=%d\n", in_pool, pool_of(outside.data()) == pool);
  delete m;
  return in_pool ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (Sym<CreateFn>("pmalloc_create_pool") == nullptr) {
    printf("libpmalloc is not preloaded\n");
    return 2;
  }
  int rc = 0;
  if (argc > 1 && strcmp(argv[1], "scope") == 0) rc = Scope();
  if (argc > 1 && strcmp(argv[1], "main") == 0) {
    printf("protected=%d\n", Sym<IsProtectedFn>("pmalloc_is_protected")(built_by_ctor));
  }
  if (rc == 0) printf("probe done\n");
  return rc;
}
