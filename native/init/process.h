#pragma once
#include <vector>

#include "plan.h"

namespace process {

// Empties the bounding, ambient, inheritable, permitted and effective capability sets.
bool dropCapabilities();

bool applyRlimits(const std::vector<plan::Rlimit>& limits);

// Marks every fd above 2 close-on-exec: the workload inherits only stdin, stdout and stderr.
bool closeFdsOnExec();

// Restores default dispositions and an empty mask, so the workload starts as a fresh process.
void resetSignals();

// PATH search with the workload's own PATH (execvpe would use ours). Returns only on failure,
// with errno from the most telling candidate (EACCES over ENOENT, as the shell reports it).
void execWorkload(const plan::Workload& w);

}  // namespace process
