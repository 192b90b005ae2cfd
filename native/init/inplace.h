// In-place mode: the sandbox without namespaces, for a container that forbids them.
#pragma once
#include "plan.h"

namespace inplace {

// Forks the workload in the helper's own namespaces (the helper is its child subreaper), confines
// it as the plan says, then supervises: forwards signals, answers connect requests, reaps every
// descendant, and exits with the workload's status. Never returns.
[[noreturn]] void run(const plan::Plan& plan, int channelFd);

}  // namespace inplace
