// pmalloc-inspect: lists the pmalloc pools of a running process from /proc/PID/smaps alone
// (no ptrace, no reading of the process's memory), so it works on any process whose smaps
// the caller may read: the caller's own, or anyone's as root.
//
// What the kernel shows, and so what this tool recognises (docs/tools.md):
// - "/memfd:pmalloc-window:0x<size> (deleted)": the landmark page at the start of pmalloc's
//   address window. Every accessible mapping inside the window is a pool area.
// - "/memfd:pmalloc:<pool> (deleted)": a protected pool area (protect:shared, the default),
//   or "pmalloc:static:<module>" for a registered range (protected statics).
// - "[anon:pmalloc:<pool>]": a writable area, named only where the kernel has
//   CONFIG_ANON_VMA_NAME. Elsewhere a writable area is an unnamed anonymous mapping: it is
//   recognised by lying inside the window and reported under the pseudo-pool "(unnamed)".
//
// Uses no part of libpmalloc: only the mapping names its public documentation describes.
#include <errno.h>
#include <string.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace {

constexpr int kExitUsage = 2;
constexpr absl::string_view kUnnamed = "(unnamed)";

constexpr char kUsage[] =
    "usage: pmalloc-inspect [--json] [--expect-locked] PID\n"
    "\n"
    "Lists the pmalloc pools of process PID from /proc/PID/smaps (no ptrace): each pool's\n"
    "areas with start address, size, resident bytes, and whether each is protected\n"
    "(read-only), sealed (mseal, 'sl' in VmFlags) or writable; then totals.\n"
    "\n"
    "  --json           print one JSON object instead of the table (docs/tools.md)\n"
    "  --expect-locked  exit 0 only if the process has at least one pool area, pmalloc's\n"
    "                   window was found, and no pool area is writable; else exit 1\n"
    "  --help           print this text\n"
    "\n"
    "Writable areas are named in /proc/PID/maps only where the kernel has\n"
    "CONFIG_ANON_VMA_NAME. Elsewhere they are recognised by lying inside pmalloc's window\n"
    "(found through its landmark mapping) and listed under the pool \"(unnamed)\": their\n"
    "bytes and count are right, their pool's name is not known. Without the landmark\n"
    "(a process that never mapped a pool area) writable areas cannot be seen, and\n"
    "--expect-locked fails. Registered ranges that are not protected yet are ordinary\n"
    "module data and are not shown.\n"
    "\n"
    "Exit status: 0 success (with --expect-locked: locked), 1 not locked,\n"
    "2 bad usage or /proc unreadable.\n";

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  std::string perms;
  std::string path;
  uint64_t rss = 0;  // bytes
  bool sealed = false;
};

struct AreaInfo {
  uint64_t start;
  uint64_t size;
  uint64_t resident;
  bool protected_;
  bool sealed;
  bool writable;
};

struct PoolInfo {
  std::string name;
  std::string kind;  // "pool", "static" or "unnamed"
  std::vector<AreaInfo> areas;
};

struct Report {
  int pid = 0;
  bool window_found = false;
  uint64_t window_start = 0;
  uint64_t window_size = 0;
  std::vector<PoolInfo> pools;
};

// /proc shows '\n' in a path as "\012"; undo the octal escapes.
std::string Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A smaps header line: "start-end perms offset dev inode [path]". The path is everything
// after the fifth field (it may contain spaces).
bool ParseHeader(const std::string& line, Mapping* m) {
  size_t pos = 0;
  std::string fields[5];
  for (int f = 0; f < 5; ++f) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const size_t end = line.find(' ', pos);
    fields[f] = line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (fields[f].empty()) return false;
    pos = end == std::string::npos ? line.size() : end;
  }
  const size_t dash = fields[0].find('-');
  if (dash == std::string::npos) return false;
  if (!absl::SimpleHexAtoi(fields[0].substr(0, dash), &m->start) ||
      !absl::SimpleHexAtoi(fields[0].substr(dash + 1), &m->end) || m->end < m->start) {
    return false;
  }
  m->perms = fields[1];
  while (pos < line.size() && line[pos] == ' ') ++pos;
  m->path = Unescape(absl::string_view(line).substr(pos));
  return true;
}

// Reads /proc/PID/smaps. nullopt with errno set when it cannot be opened or read.
std::optional<std::vector<Mapping>> ReadSmaps(int pid) {
  const std::string path = absl::StrFormat("/proc/%d/smaps", pid);
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::vector<Mapping> maps;
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    if (ParseHeader(line, &m)) {
      maps.push_back(std::move(m));
      continue;
    }
    if (maps.empty()) continue;
    absl::string_view l = line;
    if (absl::ConsumePrefix(&l, "Rss:")) {
      uint64_t kib = 0;
      l = absl::StripAsciiWhitespace(l);
      absl::ConsumeSuffix(&l, "kB");
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(l), &kib)) maps.back().rss = kib * 1024;
    } else if (absl::ConsumePrefix(&l, "VmFlags:")) {
      for (absl::string_view flag : absl::StrSplit(l, ' ', absl::SkipEmpty())) {
        if (flag == "sl") maps.back().sealed = true;
      }
    }
  }
  // An empty smaps is what a zombie or a process that just exited shows; a read error
  // (EACCES on some kernels only surfaces at read) leaves the stream bad without eof.
  if (in.bad() || (!in.eof() && in.fail())) return std::nullopt;
  if (maps.empty()) {
    errno = ESRCH;
    return std::nullopt;
  }
  return maps;
}

// The pool name in a mapping's path, if the path is one pmalloc gives its mappings.
std::optional<std::string> PoolName(absl::string_view path) {
  if (absl::ConsumePrefix(&path, "/memfd:pmalloc:")) {
    absl::ConsumeSuffix(&path, " (deleted)");
    return std::string(path);
  }
  if (absl::ConsumePrefix(&path, "[anon:pmalloc:") && absl::ConsumeSuffix(&path, "]")) {
    return std::string(path);
  }
  return std::nullopt;
}

Report Analyse(int pid, const std::vector<Mapping>& maps) {
  Report r;
  r.pid = pid;
  for (const Mapping& m : maps) {
    absl::string_view path = m.path;
    if (absl::ConsumePrefix(&path, "/memfd:pmalloc-window:0x")) {
      absl::ConsumeSuffix(&path, " (deleted)");
      uint64_t size = 0;
      if (absl::SimpleHexAtoi(path, &size) && size > 0) {
        r.window_found = true;
        r.window_start = m.start;
        r.window_size = size;
      }
    }
  }
  std::map<std::string, size_t> index;  // pool name -> position in r.pools
  for (const Mapping& m : maps) {
    const bool in_window =
        r.window_found && m.start >= r.window_start && m.end <= r.window_start + r.window_size;
    if (in_window && m.perms.compare(0, 3, "---") == 0) continue;  // reserved, landmark
    std::optional<std::string> name = PoolName(m.path);
    if (!name && !in_window) continue;
    std::string kind = "pool";
    if (!name) {
      name = std::string(kUnnamed);
      kind = "unnamed";
    } else if (!in_window && absl::StartsWith(*name, "static:")) {
      kind = "static";
    }
    auto [it, added] = index.emplace(*name, r.pools.size());
    if (added) r.pools.push_back(PoolInfo{*name, kind, {}});
    const bool writable = m.perms.size() > 1 && m.perms[1] == 'w';
    const bool readable = !m.perms.empty() && m.perms[0] == 'r';
    r.pools[it->second].areas.push_back(
        AreaInfo{m.start, m.end - m.start, m.rss, readable && !writable, m.sealed, writable});
  }
  return r;
}

struct Totals {
  size_t pools = 0, areas = 0, protected_areas = 0, sealed_areas = 0, writable_areas = 0;
  uint64_t size = 0, resident = 0, protected_bytes = 0, sealed_bytes = 0, writable_bytes = 0;
};

Totals Sum(const Report& r) {
  Totals t;
  t.pools = r.pools.size();
  for (const PoolInfo& p : r.pools) {
    for (const AreaInfo& a : p.areas) {
      ++t.areas;
      t.size += a.size;
      t.resident += a.resident;
      if (a.protected_) ++t.protected_areas, t.protected_bytes += a.size;
      if (a.sealed) ++t.sealed_areas, t.sealed_bytes += a.size;
      if (a.writable) ++t.writable_areas, t.writable_bytes += a.size;
    }
  }
  return t;
}

// Locked: something to lock was found, nothing of it is writable, and writable areas
// would have been visible (the window's landmark was found).
bool Locked(const Report& r, const Totals& t, std::string* why) {
  if (!r.window_found) {
    *why =
        "pmalloc's window not found: no pool area was ever mapped, or writable areas "
        "cannot be recognised";
    return false;
  }
  if (t.areas == 0) {
    *why = "no pool area";
    return false;
  }
  if (t.writable_areas != 0) {
    *why = absl::StrFormat("%d writable area(s), %d bytes", t.writable_areas, t.writable_bytes);
    return false;
  }
  return true;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char* Bool(bool b) { return b ? "true" : "false"; }

void PrintJson(const Report& r, const Totals& t, bool locked) {
  std::string out = absl::StrFormat("{\"pid\": %d, \"pools\": [", r.pid);
  for (size_t i = 0; i < r.pools.size(); ++i) {
    const PoolInfo& p = r.pools[i];
    out += absl::StrFormat("%s{\"name\": %s, \"kind\": \"%s\", \"areas\": [", i ? ", " : "",
                           JsonString(p.name), p.kind);
    for (size_t j = 0; j < p.areas.size(); ++j) {
      const AreaInfo& a = p.areas[j];
      out += absl::StrFormat(
          "%s{\"start\": \"0x%x\", \"size\": %d, \"resident\": %d, \"protected\": %s, "
          "\"sealed\": %s, \"writable\": %s}",
          j ? ", " : "", a.start, a.size, a.resident, Bool(a.protected_), Bool(a.sealed),
          Bool(a.writable));
    }
    out += "]}";
  }
  out += "], ";
  if (r.window_found) {
    out += absl::StrFormat("\"window\": {\"start\": \"0x%x\", \"size\": %d}, ", r.window_start,
                           r.window_size);
  } else {
    out += "\"window\": null, ";
  }
  out += absl::StrFormat(
      "\"totals\": {\"pools\": %d, \"areas\": %d, \"size\": %d, \"resident\": %d, "
      "\"protected_areas\": %d, \"protected_bytes\": %d, \"sealed_areas\": %d, "
      "\"sealed_bytes\": %d, \"writable_areas\": %d, \"writable_bytes\": %d, "
      "\"locked\": %s}}\n",
      t.pools, t.areas, t.size, t.resident, t.protected_areas, t.protected_bytes, t.sealed_areas,
      t.sealed_bytes, t.writable_areas, t.writable_bytes, Bool(locked));
  fputs(out.c_str(), stdout);
}

std::string Human(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30)) return absl::StrFormat("%.1f GiB", bytes / 1073741824.0);
  if (bytes >= (uint64_t{1} << 20)) return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  if (bytes >= 1024) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%d B", bytes);
}

void PrintTable(const Report& r, const Totals& t, bool locked, const std::string& why) {
  absl::PrintF("pid %d: %d pool(s), %d area(s), %s mapped, %s resident\n", r.pid, t.pools, t.areas,
               Human(t.size), Human(t.resident));
  if (r.window_found) {
    absl::PrintF("window 0x%x, %s\n", r.window_start, Human(r.window_size));
  } else {
    absl::PrintF("window not found (writable areas cannot be recognised)\n");
  }
  for (const PoolInfo& p : r.pools) {
    if (p.kind == "unnamed") {
      absl::PrintF("%s: areas in the window whose pool the kernel does not name\n", p.name);
    } else {
      absl::PrintF("%s %s\n", p.kind, p.name);
    }
    size_t writable = 0, sealed = 0;
    uint64_t size = 0, resident = 0;
    for (const AreaInfo& a : p.areas) {
      writable += a.writable ? 1 : 0;
      sealed += a.sealed ? 1 : 0;
      size += a.size;
      resident += a.resident;
    }
    absl::PrintF("  %d area(s), %s mapped, %s resident: %s%s\n", p.areas.size(), Human(size),
                 Human(resident),
                 writable == 0                ? "locked"
                 : writable == p.areas.size() ? "writable"
                                              : "partly writable",
                 sealed == 0                ? ""
                 : sealed == p.areas.size() ? ", sealed"
                                            : ", partly sealed");
    for (const AreaInfo& a : p.areas) {
      absl::PrintF("  0x%x %12d bytes %12d resident  %s%s\n", a.start, a.size, a.resident,
                   a.writable     ? "writable"
                   : a.protected_ ? "protected"
                                  : "no access",
                   a.sealed ? " sealed" : "");
    }
  }
  absl::PrintF("protected %s in %d area(s), sealed %s in %d, writable %s in %d\n",
               Human(t.protected_bytes), t.protected_areas, Human(t.sealed_bytes), t.sealed_areas,
               Human(t.writable_bytes), t.writable_areas);
  absl::PrintF("locked: %s\n", locked ? "yes" : absl::StrFormat("no (%s)", why));
}

[[noreturn]] void UsageError(const std::string& message) {
  absl::FPrintF(stderr, "pmalloc-inspect: %s (try --help)\n", message);
  exit(kExitUsage);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  bool expect_locked = false;
  std::optional<int> pid;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (!options_done && arg == "--json") {
      json = true;
    } else if (!options_done && arg == "--expect-locked") {
      expect_locked = true;
    } else if (!options_done && (arg == "--help" || arg == "-h")) {
      fputs(kUsage, stdout);
      return 0;
    } else if (!options_done && arg == "--") {
      options_done = true;
    } else if (!options_done && absl::StartsWith(arg, "-")) {
      UsageError(absl::StrFormat("unknown option '%s'", arg));
    } else {
      int value = 0;
      if (pid) UsageError(absl::StrFormat("more than one PID ('%s')", arg));
      if (!absl::SimpleAtoi(arg, &value) || value <= 0) {
        UsageError(absl::StrFormat("bad PID '%s'", arg));
      }
      pid = value;
    }
  }
  if (!pid) UsageError("missing PID");

  std::optional<std::vector<Mapping>> maps = ReadSmaps(*pid);
  if (!maps) {
    absl::FPrintF(stderr, "pmalloc-inspect: cannot read /proc/%d/smaps: %s\n", *pid,
                  errno == ENOENT ? "no such process" : strerror(errno));
    return kExitUsage;
  }
  const Report report = Analyse(*pid, *maps);
  const Totals totals = Sum(report);
  std::string why;
  const bool locked = Locked(report, totals, &why);
  if (json) {
    PrintJson(report, totals, locked);
  } else {
    PrintTable(report, totals, locked, why);
  }
  if (expect_locked && !locked) {
    absl::FPrintF(stderr, "pmalloc-inspect: pid %d is not locked: %s\n", *pid, why);
    return 1;
  }
  return 0;
}
