import type { NativeSeccomp } from '../types.js';
import { SECCOMP_MISC } from '../../policy/seccomp/tables/constants.js';

/**
 * How the workload installs its filter, decided here and carried out by native/init/seccomp.cc
 * from the plan (`workload.seccomp.tsync`). TSYNC: the workload is single-threaded when it
 * installs the filter, but the flag makes the filter cover every thread should that ever change,
 * instead of silently covering one. no_new_privs is set by the step before (the helper's own).
 * Kept apart from the compiler so the planner can use it without loading the compiler.
 */
export const SECCOMP_TSYNC = true;

/** Flags for seccomp(SECCOMP_SET_MODE_FILTER, flags, prog). */
export const SECCOMP_INSTALL_FLAGS = SECCOMP_TSYNC ? SECCOMP_MISC.SECCOMP_FILTER_FLAG_TSYNC : 0;

/** The plan's seccomp section for a compiled program. */
export function nativeSeccomp(program: Buffer): NativeSeccomp {
  return { program: program.toString('base64'), tsync: SECCOMP_TSYNC };
}
