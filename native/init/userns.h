#pragma once
#include <sys/types.h>

#include "plan.h"

namespace userns {

// Runs in the monitor: writes the child's setgroups/uid_map/gid_map so that the inside id maps to
// the host id and nothing else (root is never mapped).
bool writeMapsFromParent(pid_t child, const plan::Identity& id);

// Runs in init: takes the inside uid/gid while keeping the capabilities it holds in the new user
// namespace (needed for the mounts that follow).
bool becomeSandboxUser(const plan::Identity& id);

}  // namespace userns
