#pragma once
#include "plan.h"

namespace seccomp {

// Installs the compiled program (built and checked by the TypeScript compiler). The last step
// before execve: after it, only what the filter allows can run, including our own cleanup.
// no_new_privs must already be set (process::setNoNewPrivs); TSYNC only when the plan says so.
bool install(const plan::Seccomp& s);

}  // namespace seccomp
