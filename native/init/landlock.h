#pragma once
#include "plan.h"

namespace landlock {

// Creates the ruleset the plan describes (already downgraded to the host's ABI by the planner),
// adds its rules and restricts the calling process. no_new_privs must already be set
// (process::setNoNewPrivs, the step before).
bool apply(const plan::Landlock& l);

}  // namespace landlock
