import type { ForwardedSignal } from '../policy/signals.js';

/** The plan the helper carries out: plain data, serialised as JSON on the helper's fd 3. */
export type NativeMount =
  | { op: 'bind'; src: string; dest: string; readonly?: boolean; noexec?: boolean; dirOnly?: boolean }
  | { op: 'tmpfs'; dest: string; size?: number; mode?: number; noexec?: boolean }
  | { op: 'proc'; dest: string }
  | { op: 'mqueue'; dest: string }
  | NativeDev
  | { op: 'file'; dest: string; content: string; mode?: number }
  | { op: 'dir'; dest: string; mode?: number }
  | { op: 'symlink'; dest: string; target: string }
  /**
   * Hides what is at dest: a directory under an empty read-only tmpfs, anything else under an
   * empty read-only file. For kernel files that exist only in some kernel builds: nothing at dest
   * means nothing to hide.
   */
  | { op: 'mask'; dest: string }
  /** Makes the subtree at dest read-only where it is (bound onto itself); nothing at dest, nothing to do. */
  | { op: 'readonly'; dest: string };

/**
 * A minimal /dev at dest, built in this order: a tmpfs of `size` bytes (mode 0755); the host's
 * character devices `devices` bound at dest/NAME (a user namespace cannot create device nodes);
 * with `pts`, a new devpts instance of the sandbox's own at dest/pts; with `shm`, a tmpfs of
 * shm.size bytes at dest/shm (mode 1777); the `links` dest/NAME -> TARGET; then /dev itself
 * nosuid and noexec. Decided in src/plan/mounts.ts (DEV).
 */
export interface NativeDev {
  op: 'dev';
  dest: string;
  size: number;
  devices: string[];
  pts: boolean;
  shm: { size: number } | null;
  links: { name: string; target: string }[];
}

export interface NativeService {
  name: string;
  kind: 'tcp' | 'unix';
  port?: number;
  path?: string;
}

export interface NativeIdentity {
  uid: number;
  gid: number;
  hostUid: number;
  hostGid: number;
  dropSupplementaryGroups: boolean;
}

export interface NativeRlimit {
  resource: string;
  soft: number | 'infinity';
  hard: number | 'infinity';
}

export interface NativeLandlock {
  abi: number;
  handledFs: number;
  handledNet: number;
  scoped: number;
  restrictFlags: number;
  rules: { path: string; access: number }[];
  netRules: { port: number; access: number }[];
}

/**
 * The compiled filter, and how to install it: tsync adds SECCOMP_FILTER_FLAG_TSYNC (the filter
 * covers every thread). Decided in src/plan/seccomp/install.ts.
 */
export interface NativeSeccomp {
  /** struct sock_filter[] in host order, base64. */
  program: string;
  tsync: boolean;
}

export interface NativePlan {
  version: 1;
  supervisorPid: number;
  hostname: string;
  namespaces: ('user' | 'mount' | 'pid' | 'net' | 'ipc' | 'uts' | 'cgroup')[];
  identity: NativeIdentity;
  mounts: NativeMount[];
  services: NativeService[];
  cgroupProcs: string | null;
  /** Signals the helper passes on to the workload (monitor → init → workload, or in-place helper → workload). */
  forwardSignals: ForwardedSignal[];
  /**
   * Present only in in-place mode (no namespaces, mounts or services): the helper forks the
   * workload directly, as a child subreaper, and changes to `identity` itself when asked.
   */
  inPlace?: { changeIdentity: boolean; dropBoundingSet: boolean; allowRoot: boolean };
  workload: {
    argv: string[];
    env: string[];
    cwd: string;
    newSession: boolean;
    rlimits: NativeRlimit[];
    landlock: NativeLandlock | null;
    seccomp: NativeSeccomp | null;
  };
}

export type LayerStatus = 'enforced' | 'partial' | 'unavailable' | 'off';

export interface LayerReport {
  layer: string;
  status: LayerStatus;
  mode?: 'required' | 'best-effort';
  detail: string;
  /** What the user can do when the layer is degraded. */
  hint?: string;
}

export interface EnforcementReport {
  sandbox: string;
  /** How the sandbox was built (see chooseMode). */
  mode?: 'namespaces' | 'in-place';
  modeReason?: string;
  layers: LayerReport[];
}
