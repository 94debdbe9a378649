// A user's test of their own config structure (docs/testing.md shows the same): the config
// lives in a pool, lockdown locks it, and the test proves a write to it faults.
#include <pmalloc/pmalloc.h>
#include <pmalloc/testing.h>

#include <cstring>

#include "gtest/gtest.h"

struct ServerConfig {
  int port;
  int max_sessions;
  char admin[32];
};

// The application's start-up: builds the config in its own pool, then locks everything.
ServerConfig* LoadConfig() {
  static pmalloc_pool* pool = pmalloc_create_pool("config", 0, 0, 0);
  auto* cfg = static_cast<ServerConfig*>(pzalloc(pool, sizeof(ServerConfig)));
  cfg->port = 8443;
  cfg->max_sessions = 100;
  std::strcpy(cfg->admin, "root");
  return cfg;
}

TEST(ServerConfig, IsLockedAfterLockdown) {
  ServerConfig* cfg = LoadConfig();
  ASSERT_EQ(pmalloc_lockdown(0), 0);
  EXPECT_LOCKED(cfg, sizeof(*cfg));
  EXPECT_THAT(cfg, pmalloc::IsLockedMemory());
  EXPECT_EQ(cfg->port, 8443);  // reads keep working
  EXPECT_WRITE_FAULTS(cfg->max_sessions = 100000);
  EXPECT_WRITE_FAULTS(std::strcpy(cfg->admin, "mallory"));
}
