// Stub bodies (first commit of the contract); the real implementation follows.
#include "core/sites.h"

namespace pmalloc::internal {

bool CaptureSite(Site* out) {
  out->depth = 0;
  return false;
}
SiteId InternSite(const Site&) { return 0; }
const Site* SiteById(SiteId) { return nullptr; }
SiteStats* StatsOf(SiteId) { return nullptr; }
uint32_t SiteCount() { return 0; }
void RecordBlockSite(const void*, SiteId) {}
void ForgetBlockSite(const void*) {}
SiteId BlockSite(const void*) { return 0; }
size_t FormatSite(const Site&, char* buf, size_t n) {
  if (n > 0) buf[0] = '\0';
  return 0;
}
size_t FormatSymbols(const Site&, char* buf, size_t n) {
  if (n > 0) buf[0] = '\0';
  return 0;
}

}  // namespace pmalloc::internal
