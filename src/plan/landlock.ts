import type { LayerReport, NativeLandlock } from './types.js';

/** Landlock rights (uapi linux/landlock.h) and the ABI that introduced each. */
export const FS = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  REFER: 1 << 13,
  TRUNCATE: 1 << 14,
  IOCTL_DEV: 1 << 15,
} as const;
export const NET = { BIND_TCP: 1 << 0, CONNECT_TCP: 1 << 1 } as const;
export const SCOPE = { ABSTRACT_UNIX_SOCKET: 1 << 0, SIGNAL: 1 << 1 } as const;
export const RESTRICT = { LOG_SAME_EXEC_OFF: 1 << 0, LOG_NEW_EXEC_ON: 1 << 1, LOG_SUBDOMAINS_OFF: 1 << 2 } as const;

/** All filesystem rights of each ABI (ABI 1 has the first 13). */
export function fsRightsOf(abi: number): number {
  if (abi <= 0) return 0;
  let mask = (1 << 13) - 1;
  if (abi >= 2) mask |= FS.REFER;
  if (abi >= 3) mask |= FS.TRUNCATE;
  if (abi >= 5) mask |= FS.IOCTL_DEV;
  return mask;
}
export const netRightsOf = (abi: number): number => (abi >= 4 ? NET.BIND_TCP | NET.CONNECT_TCP : 0);
export const scopesOf = (abi: number): number => (abi >= 6 ? SCOPE.ABSTRACT_UNIX_SOCKET | SCOPE.SIGNAL : 0);
export const restrictFlagsOf = (abi: number): number => (abi >= 7 ? RESTRICT.LOG_SAME_EXEC_OFF | RESTRICT.LOG_NEW_EXEC_ON | RESTRICT.LOG_SUBDOMAINS_OFF : 0);

const READ = FS.READ_FILE | FS.READ_DIR;
const READ_EXEC = READ | FS.EXECUTE;
const READ_WRITE =
  READ_EXEC |
  FS.WRITE_FILE | FS.REMOVE_DIR | FS.REMOVE_FILE | FS.MAKE_DIR | FS.MAKE_REG | FS.MAKE_SOCK | FS.MAKE_FIFO | FS.MAKE_SYM | FS.REFER | FS.TRUNCATE;
const DEVICE = FS.READ_FILE | FS.WRITE_FILE | FS.TRUNCATE | FS.IOCTL_DEV;

/** The ruleset we want, in terms of the newest ABI we know (the native ruleset minus its ABI). */
export type LandlockRequest = Omit<NativeLandlock, 'abi'>;

export interface Downgrade {
  abi: number;
  ruleset: NativeLandlock | null;
  status: 'enforced' | 'partial' | 'unavailable';
  /** Rights, scopes or flags the ABI lacks, by name. */
  missing: string[];
}

const NAMES: [number, string, 'fs' | 'net' | 'scope' | 'flags'][] = [
  [FS.REFER, 'fs.refer (ABI 2)', 'fs'],
  [FS.TRUNCATE, 'fs.truncate (ABI 3)', 'fs'],
  [NET.BIND_TCP, 'net.bind_tcp (ABI 4)', 'net'],
  [NET.CONNECT_TCP, 'net.connect_tcp (ABI 4)', 'net'],
  [FS.IOCTL_DEV, 'fs.ioctl_dev (ABI 5)', 'fs'],
  [SCOPE.ABSTRACT_UNIX_SOCKET, 'scope.abstract_unix_socket (ABI 6)', 'scope'],
  [SCOPE.SIGNAL, 'scope.signal (ABI 6)', 'scope'],
];

/**
 * Best-effort landlock: keep what the running ABI can enforce, drop the rest and name it.
 * Rules whose rights all vanish are dropped; network rules vanish with the network rights. Audit
 * flags (ABI 7) are not protection, so their absence does not make the result partial.
 */
export function downgradeLandlock(abi: number, want: LandlockRequest): Downgrade {
  if (abi <= 0) return { abi: 0, ruleset: null, status: 'unavailable', missing: ['landlock'] };
  const fsMask = fsRightsOf(abi);
  const netMask = netRightsOf(abi);
  const scopeMask = scopesOf(abi);
  const missing: string[] = [];
  for (const [bit, name, kind] of NAMES) {
    const wanted = kind === 'fs' ? want.handledFs : kind === 'net' ? want.handledNet : want.scoped;
    const have = kind === 'fs' ? fsMask : kind === 'net' ? netMask : scopeMask;
    if (wanted & bit && !(have & bit)) missing.push(name);
  }
  const handledFs = want.handledFs & fsMask;
  const handledNet = want.handledNet & netMask;
  const rules = want.rules.map((r) => ({ path: r.path, access: r.access & handledFs })).filter((r) => r.access !== 0);
  const netRules = handledNet ? want.netRules.map((r) => ({ port: r.port, access: r.access & handledNet })).filter((r) => r.access !== 0) : [];
  return {
    abi,
    ruleset: {
      abi,
      handledFs,
      handledNet,
      scoped: want.scoped & scopeMask,
      restrictFlags: want.restrictFlags & restrictFlagsOf(abi),
      rules,
      netRules,
    },
    status: missing.length ? 'partial' : 'enforced',
    missing,
  };
}

/** The rights that apply to a non-directory; the kernel refuses any other on a file rule (EINVAL). */
export const FILE_RIGHTS = FS.EXECUTE | FS.WRITE_FILE | FS.READ_FILE | FS.TRUNCATE | FS.IOCTL_DEV;

export interface LandlockInput {
  /** Paths that are files, not directories (single-file binds): they get file rights only. */
  files?: string[];
  readOnly: string[];
  readExec: string[];
  readWrite: string[];
  devices: string[];
  connectPorts: number[];
  bindPorts: number[];
  logDenials: boolean;
}

/** The default ruleset: read beneath the system, write beneath the sandbox's writable trees only. */
export function buildLandlockRequest(input: LandlockInput): LandlockRequest {
  const rules: { path: string; access: number }[] = [{ path: '/', access: FS.READ_DIR }];
  const seen = new Map<string, number>();
  const add = (path: string, access: number) => seen.set(path, (seen.get(path) ?? 0) | access);
  for (const p of input.readOnly) add(p, READ);
  for (const p of input.readExec) add(p, READ_EXEC);
  for (const p of input.readWrite) add(p, READ_WRITE);
  add('/dev', FS.READ_DIR);
  for (const d of input.devices) add(d, DEVICE);
  const files = new Set(input.files ?? []);
  for (const [path, access] of seen) rules.push({ path, access: files.has(path) ? access & FILE_RIGHTS : access });
  const netRules = [
    ...[...new Set(input.connectPorts)].map((port) => ({ port, access: NET.CONNECT_TCP })),
    ...[...new Set(input.bindPorts)].map((port) => ({ port, access: NET.BIND_TCP })),
  ];
  return {
    handledFs: fsRightsOf(Number.MAX_SAFE_INTEGER),
    handledNet: NET.BIND_TCP | NET.CONNECT_TCP,
    scoped: SCOPE.ABSTRACT_UNIX_SOCKET | SCOPE.SIGNAL,
    restrictFlags: input.logDenials ? RESTRICT.LOG_NEW_EXEC_ON : 0,
    rules,
    netRules,
  };
}

export function describeLandlock(d: Downgrade, mode: 'required' | 'best-effort', reason?: string): LayerReport {
  if (d.status === 'unavailable') {
    return {
      layer: 'landlock',
      status: 'unavailable',
      mode,
      detail: reason ?? 'landlock ABI 0',
      hint: 'filesystem writes are still confined by read-only mounts; for landlock use Linux >= 5.13 with landlock in lsm=',
    };
  }
  const rs = d.ruleset!;
  const ports = rs.netRules.filter((r) => r.access & NET.CONNECT_TCP).map((r) => r.port);
  const detail = `ABI ${d.abi}: ${rs.rules.length} path rules${rs.handledNet ? `, TCP connect only to ${ports.join(',') || 'nothing'}` : ''}${rs.scoped ? ', scoped (abstract unix sockets, signals)' : ''}${d.missing.length ? `; missing ${d.missing.join(', ')}` : ''}`;
  return {
    layer: 'landlock',
    status: d.status,
    mode,
    detail,
    ...(d.missing.length ? { hint: 'a newer kernel enforces the missing rights' } : {}),
  };
}
