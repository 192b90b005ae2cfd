/**
 * The seccomp-BPF compiler: profile section → rule IR (front-end.ts) → classic BPF
 * (back-end.ts, assembler.ts), with syscall tables generated from the uapi headers
 * (scripts/gen-syscalls.mjs → tables/). No libseccomp.
 *
 * Semantics are stated once, in src/profile/seccomp.ts: default allow with a deny list, allow
 * entries as exceptions, foreign arch / x32 killed, numbers newer than the table → ENOSYS.
 *
 * Installing (native/init/seccomp.cc, after the workload's no_new_privs step):
 * seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_INSTALL_FLAGS, {len: instructions, filter: program})
 * as the workload's last step before execve, with the flags the plan carries (install.ts).
 * mode `off` yields an empty program: install nothing.
 */
import { ClawjailError } from '../../errors.js';
import { SeccompSchema, type SeccompConfig, type SeccompConfigInput } from '../../profile/seccomp.js';
import { isSeccompArch, syscallTable, SECCOMP_ARCHES, type SeccompArch } from '../../policy/seccomp/syscalls.js';
import { SECCOMP_MISC } from '../../policy/seccomp/tables/constants.js';
import { encodeProgram } from './assembler.js';
import { emitBpf } from './back-end.js';
import { buildSeccompIr } from './front-end.js';
import { SECCOMP_INSTALL_FLAGS } from './install.js';

export { buildSeccompIr } from './front-end.js';
export { emitBpf, emitLinearChain, dispatchIntervals, actionValue } from './back-end.js';
export { encodeProgram, decodeProgram, type Insn } from './assembler.js';
export { disassembleBpf } from './disassemble.js';
export { syscallTable, isKnownSyscall, archesWithSyscall, suggestSyscalls, SECCOMP_ARCHES, type SeccompArch } from '../../policy/seccomp/syscalls.js';
export { resolveArgValue, NAMED_VALUES } from '../../policy/seccomp/values.js';
export type { SeccompIr, SeccompAction, SyscallDecision, Clause, ArgCheck, CompareOp } from './ir.js';

export { SECCOMP_INSTALL_FLAGS } from './install.js';
export const SECCOMP_MAX_INSTRUCTIONS = SECCOMP_MISC.BPF_MAXINSNS;

export interface CompiledSeccomp {
  mode: SeccompConfig['mode'];
  arch: SeccompArch;
  /** seccomp_data.arch the filter accepts; anything else is killed. */
  auditArch: number;
  /** struct sock_filter[] in host (little-endian) order; empty when mode is off. */
  program: Buffer;
  instructions: number;
  /** seccomp(2) flags to install with. */
  flags: number;
  /** Syscalls failed whatever their arguments (cached by the kernel as such). */
  denied: string[];
  /** Syscalls whose outcome depends on arguments (these run the filter on every call). */
  argumentChecked: string[];
  /** Names in the profile that this architecture does not have, left out. */
  skipped: string[];
  /** Linux uapi version of the syscall table; newer syscalls get ENOSYS. */
  tableVersion: string;
}

function planError(message: string, hint: string, cause?: unknown): ClawjailError {
  return new ClawjailError('ERR_CLAWJAIL_PLAN', message, { step: 'plan.seccomp', hint, cause });
}

/**
 * Compiles the profile's seccomp section for one architecture. Throws ClawjailError
 * ERR_CLAWJAIL_PLAN on an invalid section, an unsupported architecture or a program over the
 * kernel's 4096-instruction limit.
 */
export function compileSeccomp(config: SeccompConfig | SeccompConfigInput, arch: SeccompArch): CompiledSeccomp {
  if (!isSeccompArch(arch)) {
    const why = arch === 'i386' || arch === 'x32'
      ? `${arch} is refused on purpose: i386 multiplexes sockets through socketcall, which a filter cannot check, and x32 is killed by the x86_64 filter`
      : `no syscall table for "${String(arch)}"`;
    throw planError(`cannot compile a seccomp filter for ${String(arch)}: ${why}`, `run on one of ${SECCOMP_ARCHES.join(', ')}, or set seccomp.mode: off in the profile`);
  }
  const parsed = SeccompSchema.safeParse(config);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `seccomp.${i.path.join('.')}: ${i.message}`).join('\n  ');
    throw planError(`invalid seccomp section:\n  ${issues}`, 'fix the seccomp section of the profile; profiles/default.yaml shows the format', parsed.error);
  }
  const cfg = parsed.data;
  const table = syscallTable(arch);
  const base = { mode: cfg.mode, arch, auditArch: table.auditArch, flags: SECCOMP_INSTALL_FLAGS, tableVersion: table.headerVersion };
  if (cfg.mode === 'off') {
    return { ...base, program: Buffer.alloc(0), instructions: 0, denied: [], argumentChecked: [], skipped: [] };
  }

  const ir = buildSeccompIr(cfg, arch);
  const insns = emitBpf(ir);
  if (insns.length > SECCOMP_MAX_INSTRUCTIONS) {
    throw planError(
      `the seccomp filter for ${arch} is ${insns.length} instructions, over the kernel's limit of ${SECCOMP_MAX_INSTRUCTIONS}`,
      'remove or merge deny/allow entries with argument conditions (each condition costs 2-5 instructions)',
    );
  }
  return {
    ...base,
    program: encodeProgram(insns),
    instructions: insns.length,
    denied: ir.decisions.filter((d) => d.clauses.length === 0).map((d) => d.name),
    argumentChecked: ir.decisions.filter((d) => d.clauses.length > 0).map((d) => d.name),
    skipped: ir.skipped,
  };
}
