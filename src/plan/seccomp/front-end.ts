import type { SeccompAllow, SeccompCondition, SeccompConfig, SeccompDeny } from '../../profile/seccomp.js';
import { syscallTable, type SeccompArch } from '../../policy/seccomp/syscalls.js';
import { ERRNO } from '../../policy/seccomp/tables/constants.js';
import { errnoNumber, resolveArgValue } from '../../policy/seccomp/values.js';
import type { ArgCheck, Clause, SeccompAction, SeccompIr, SyscallDecision } from './ir.js';

function toCheck(c: SeccompCondition): ArgCheck {
  const width = c.width;
  const all = (1n << BigInt(width)) - 1n;
  const mask = c.op === 'masked-eq' && c.mask !== undefined ? resolveArgValue(c.mask, width) : all;
  return { index: c.index, op: c.op, value: resolveArgValue(c.value, width) & mask, mask, width };
}

function sameAction(a: SeccompAction, b: SeccompAction): boolean {
  return a.type === b.type && (a.type !== 'errno' || (b.type === 'errno' && a.errno === b.errno));
}

/**
 * Profile section → rule IR for one architecture. Implements the semantics stated in
 * src/profile/seccomp.ts: allow entries win, the first matching deny gives the errno.
 * Expects a parsed config (SeccompSchema); compileSeccomp parses before calling this.
 */
export function buildSeccompIr(config: SeccompConfig, arch: SeccompArch): SeccompIr {
  const table = syscallTable(arch);
  const logOnly = config.mode === 'log';
  const failWith = (errnoName: string): SeccompAction => {
    if (logOnly) return { type: 'log' };
    const errno = errnoNumber(errnoName);
    if (errno === undefined) throw new Error(`unknown errno ${errnoName}`);
    return { type: 'errno', errno, name: errnoName };
  };

  const byName = new Map<string, { deny: SeccompDeny[]; allow: SeccompAllow[] }>();
  const skipped = new Set<string>();
  const entry = (name: string) => {
    let e = byName.get(name);
    if (!e) byName.set(name, (e = { deny: [], allow: [] }));
    return e;
  };
  for (const d of config.deny) {
    if (table.byName.has(d.syscall)) entry(d.syscall).deny.push(d);
    else skipped.add(d.syscall);
  }
  for (const a of config.allow) {
    if (table.byName.has(a.syscall)) entry(a.syscall).allow.push(a);
    else skipped.add(a.syscall);
  }

  const decisions: SyscallDecision[] = [];
  for (const [name, { deny, allow }] of byName) {
    if (deny.length === 0) continue;
    if (allow.some((a) => a.args.length === 0)) continue;
    const firstUnconditional = deny.findIndex((d) => d.args.length === 0);
    const uncond = firstUnconditional >= 0 ? deny[firstUnconditional] : undefined;
    const conditionalDenies = uncond ? deny.slice(0, firstUnconditional) : deny;
    const clauses: Clause[] = [
      ...allow.map((a) => ({ checks: a.args.map(toCheck), action: { type: 'allow' } as const, reason: a.reason })),
      ...conditionalDenies.map((d) => ({ checks: d.args.map(toCheck), action: failWith(d.errno), reason: d.reason })),
    ];
    const fallback: SeccompAction = uncond ? failWith(uncond.errno) : { type: 'allow' };
    // A clause whose action equals the fallback changes nothing once nothing different follows it.
    while (clauses.length > 0 && sameAction(clauses[clauses.length - 1]!.action, fallback)) clauses.pop();
    if (clauses.length === 0 && fallback.type === 'allow') continue;
    decisions.push({
      nr: table.byName.get(name)!,
      name,
      clauses,
      fallback,
      fallbackReason: uncond?.reason ?? 'no deny entry matched',
    });
  }
  decisions.sort((a, b) => a.nr - b.nr);

  return {
    arch,
    auditArch: table.auditArch,
    killX32: arch === 'x86_64',
    maxNr: table.maxNr,
    beyondTable: logOnly ? { type: 'log' } : { type: 'errno', errno: ERRNO.ENOSYS!, name: 'ENOSYS' },
    decisions,
    skipped: [...skipped].sort(),
  };
}
