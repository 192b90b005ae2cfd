#pragma once
#include <vector>

#include "plan.h"

namespace mountns {

// Stops mount events from propagating back to the host.
bool makePrivate();

// Opens every bind source (and /dev node) with O_PATH while the host's tree is still visible and
// before init changes uid, so a source resolves exactly once, with the caller's permissions.
// sources[i] belongs to plan.mounts[i] (-1 where unused); devices are appended per Dev mount.
struct Sources {
  std::vector<int> mountFds;
  std::vector<std::vector<int>> deviceFds;
};
bool openSources(const plan::Plan& plan, Sources* out);

// Builds the new root on a tmpfs (every path resolved inside it, as after pivot_root), then
// pivot_root()s into it and detaches the old root.
bool buildRootAndPivot(const plan::Plan& plan, Sources& sources);

// Makes the root tmpfs itself read-only once init has created what it needs there.
bool sealRoot();

}  // namespace mountns
