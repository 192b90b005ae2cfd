#pragma once
#include <csignal>
#include <vector>

#include "plan.h"

namespace process {

// Empties the bounding, ambient, inheritable, permitted and effective capability sets.
bool dropCapabilities();

// The workload's one no_new_privs step: before landlock and seccomp, which both require it
// (without CAP_SYS_ADMIN), and for good: exec can then grant no privilege.
bool setNoNewPrivs();

bool applyRlimits(const std::vector<plan::Rlimit>& limits);

// Marks every fd above 2 close-on-exec: the workload inherits only stdin, stdout and stderr.
bool closeFdsOnExec();

// The signals a helper process waits for: the plan's forwarded ones, and SIGCHLD.
sigset_t waitedSignals(const std::vector<int>& forwarded);

// Restores default dispositions and an empty mask, so the workload starts as a fresh process.
void resetSignals();

// PATH search with the workload's own PATH from the plan (execvpe would use ours, or a default
// of its own when there is none: here no PATH means a bare name is not found). Returns only on
// failure, with errno from the most telling candidate (EACCES over ENOENT, as the shell reports it).
void execWorkload(const plan::Workload& w);

// Without a new session (--tty): a process group of its own, made the terminal's foreground group
// so keyboard signals reach the workload. A stdin that is no controlling terminal is left alone.
bool takeTerminal();

// The workload's last step: exec, or on failure write the error record to `execReport` and exit
// (127 not found, 126 not executable, kSetupFailed for a failed setup step before it).
[[noreturn]] void execOrReport(const plan::Workload& w, bool setupOk, int execReport, int setupFailedCode);

}  // namespace process
