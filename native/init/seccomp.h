#pragma once
#include "plan.h"

namespace seccomp {

// Installs the compiled program (built and checked by the TypeScript compiler). The last step
// before execve: after it, only what the filter allows can run, including our own cleanup.
bool install(const plan::Seccomp& s);

}  // namespace seccomp
