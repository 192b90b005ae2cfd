import { AARCH64_SYSCALLS, AARCH64_SYSCALLS_HEADER_VERSION } from './tables/aarch64.js';
import { AUDIT_ARCH } from './tables/constants.js';
import { X86_64_SYSCALLS, X86_64_SYSCALLS_HEADER_VERSION } from './tables/x86_64.js';

export const SECCOMP_ARCHES = ['x86_64', 'aarch64'] as const;
export type SeccompArch = (typeof SECCOMP_ARCHES)[number];

export interface SyscallTable {
  arch: SeccompArch;
  /** The value the kernel puts in seccomp_data.arch for this ABI. */
  auditArch: number;
  byName: ReadonlyMap<string, number>;
  byNumber: ReadonlyMap<number, string>;
  /** Highest number in the table: anything above is a syscall newer than the headers we read. */
  maxNr: number;
  headerVersion: string;
}

function makeTable(arch: SeccompArch, auditArch: number, names: Readonly<Record<string, number>>, headerVersion: string): SyscallTable {
  const byName = new Map(Object.entries(names));
  const byNumber = new Map([...byName].map(([name, nr]) => [nr, name] as const));
  return { arch, auditArch, byName, byNumber, maxNr: Math.max(...byName.values()), headerVersion };
}

const TABLES: Record<SeccompArch, SyscallTable> = {
  x86_64: makeTable('x86_64', AUDIT_ARCH.AUDIT_ARCH_X86_64, X86_64_SYSCALLS, X86_64_SYSCALLS_HEADER_VERSION),
  aarch64: makeTable('aarch64', AUDIT_ARCH.AUDIT_ARCH_AARCH64, AARCH64_SYSCALLS, AARCH64_SYSCALLS_HEADER_VERSION),
};

export function isSeccompArch(arch: string): arch is SeccompArch {
  return (SECCOMP_ARCHES as readonly string[]).includes(arch);
}

export function syscallTable(arch: SeccompArch): SyscallTable {
  return TABLES[arch];
}

const ALL_NAMES: ReadonlySet<string> = new Set(SECCOMP_ARCHES.flatMap((a) => [...TABLES[a].byName.keys()]));

/** True when the name is a system call on at least one supported architecture. */
export function isKnownSyscall(name: string): boolean {
  return ALL_NAMES.has(name);
}

/** The architectures that have this system call (iopl: x86_64 only; renameat2: both). */
export function archesWithSyscall(name: string): SeccompArch[] {
  return SECCOMP_ARCHES.filter((a) => TABLES[a].byName.has(name));
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** Up to `max` known names close to `name`, for "did you mean" messages. */
export function suggestNames(name: string, candidates: Iterable<string>, max = 3): string[] {
  const needle = name.toLowerCase().replace(/^(sys_|__nr_)/, '');
  const scored: Array<[string, number]> = [];
  for (const c of candidates) {
    const lc = c.toLowerCase();
    const d = lc.startsWith(needle) || needle.startsWith(lc) ? Math.abs(lc.length - needle.length) * 0.5 : editDistance(needle, lc);
    if (d <= Math.max(2, Math.floor(needle.length / 3))) scored.push([c, d]);
  }
  return scored.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0])).slice(0, max).map(([c]) => c);
}

export function suggestSyscalls(name: string): string[] {
  return suggestNames(name, ALL_NAMES);
}
