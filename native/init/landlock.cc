#include "landlock.h"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

namespace landlock {
namespace {

// The uapi layout, spelled out so headers older than the running kernel still build.
struct RulesetAttr {
  uint64_t handledAccessFs;
  uint64_t handledAccessNet;  // ABI 4
  uint64_t scoped;            // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowedAccess;
  int32_t parentFd;
};

struct NetPortAttr {
  uint64_t allowedAccess;
  uint64_t port;
};

constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

size_t attrSize(int abi) {
  if (abi >= 6) return sizeof(RulesetAttr);
  if (abi >= 4) return offsetof(RulesetAttr, scoped);
  return offsetof(RulesetAttr, handledAccessNet);
}

}  // namespace

bool apply(const plan::Landlock& l) {
  RulesetAttr attr{l.handledFs, l.handledNet, l.scoped};
  int rs = static_cast<int>(syscall(__NR_landlock_create_ruleset, &attr, attrSize(l.abi), 0));
  if (rs < 0) return errors::fail("landlock.create_ruleset", errno);
  for (const auto& r : l.rules) {
    int fd = open(r.path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      close(rs);
      return errors::fail("landlock.open_rule_path", err, r.path);
    }
    PathBeneathAttr pb{r.access, fd};
    long rc = syscall(__NR_landlock_add_rule, rs, kRulePathBeneath, &pb, 0);
    int err = errno;
    close(fd);
    if (rc != 0) {
      close(rs);
      return errors::fail("landlock.add_rule", err, r.path);
    }
  }
  for (const auto& r : l.netRules) {
    NetPortAttr np{r.access, r.port};
    if (syscall(__NR_landlock_add_rule, rs, kRuleNetPort, &np, 0) != 0) {
      int err = errno;
      close(rs);
      return errors::fail("landlock.add_net_rule", err, std::to_string(r.port));
    }
  }
  long rc = syscall(__NR_landlock_restrict_self, rs, l.restrictFlags);
  int err = errno;
  close(rs);
  if (rc != 0) return errors::fail("landlock.restrict_self", err);
  return true;
}

}  // namespace landlock
