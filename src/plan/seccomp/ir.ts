import type { SeccompArch } from '../../policy/seccomp/syscalls.js';
import type { ArgWidth } from '../../policy/seccomp/values.js';

/** What the filter returns for a call. `kill` kills the whole process (SECCOMP_RET_KILL_PROCESS). */
export type SeccompAction =
  | { type: 'allow' }
  | { type: 'errno'; errno: number; name: string }
  | { type: 'log' }
  | { type: 'kill' };

export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked-eq';

/** `(arg[index] & mask) OP value`, unsigned, on the low `width` bits of the argument. For ops
 * other than masked-eq the mask is all ones of the width. `value` is already within the mask. */
export interface ArgCheck {
  index: number;
  op: CompareOp;
  value: bigint;
  mask: bigint;
  width: ArgWidth;
}

/** All checks hold → action. */
export interface Clause {
  checks: ArgCheck[];
  action: SeccompAction;
  reason: string;
}

/**
 * The decision for one system call that is not a plain allow: clauses tried in order, first
 * match wins, otherwise `fallback`. No clauses means a constant decision that the kernel can
 * make from the syscall number alone.
 */
export interface SyscallDecision {
  nr: number;
  name: string;
  clauses: Clause[];
  fallback: SeccompAction;
  fallbackReason: string;
}

/**
 * Rule IR for one architecture. Every number in [0, maxNr] that has no decision is allowed
 * (unassigned numbers included: the kernel answers ENOSYS for those itself); numbers above
 * maxNr get `beyondTable`; on x86_64 numbers with the x32 bit are killed.
 */
export interface SeccompIr {
  arch: SeccompArch;
  auditArch: number;
  killX32: boolean;
  maxNr: number;
  beyondTable: SeccompAction;
  /** Ascending by nr, one per number. */
  decisions: SyscallDecision[];
  /** Names the profile uses that this architecture does not have (iopl on aarch64). */
  skipped: string[];
}
