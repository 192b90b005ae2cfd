import { posix } from 'node:path';
import { ClawjailError } from '../errors.js';
import type { PathFacts } from '../host/path-facts.js';
import type { Bind, Profile } from '../profile/schema.js';
import type { NativeDev, NativeMount } from './types.js';

/**
 * The mount list, in the order the helper carries it out:
 *   1. host system paths read-only (symlinks such as /bin -> usr/bin reproduced as links)
 *   2. generated /etc files (hosts, resolv.conf, passwd, group) over the read-only /etc
 *   3. fresh /proc (with the host-describing files in PROC_MASKED hidden and PROC_READ_ONLY
 *      read-only), minimal /dev, /tmp tmpfs, /run/clawjail
 *   4. /sandbox read-write
 *   5. extra binds, parents before children (so a read-only file can sit inside /sandbox)
 * Nothing else of the host exists inside.
 */
export interface MountInput {
  profile: Profile;
  sandboxHostDir: string;
  /** Real host paths that no read-write bind may contain (equal to or beneath its source). */
  protectedPaths?: ProtectedPath[];
  /** lstat/realpath facts for system paths, generated-file targets and bind sources (expanded). */
  facts: PathFacts;
  /** Bind sources after ~ expansion, keyed by the profile's text. */
  expand: (p: string) => string;
  tmpSizeBytes: number;
  sandboxUser: { uid: number; gid: number };
  /** With --tty: the host path of the terminal the workload keeps (e.g. /dev/pts/3). */
  terminal?: string;
}

/** A host path the workload must not be able to change, and what it is (for the refusal). */
export interface ProtectedPath {
  path: string;
  what: 'sandbox directory' | 'profile' | 'audit log' | 'clawjail installation';
}

export interface ResolvedBind {
  src: string;
  resolved: string;
  dest: string;
  readonly: boolean;
  landlock: boolean;
  isDir: boolean;
}

export interface MountResult {
  mounts: NativeMount[];
  binds: ResolvedBind[];
  /** Inside paths the workload sees read-only / read-write (for landlock). */
  readOnlyPaths: string[];
  readWritePaths: string[];
  warnings: string[];
}

/**
 * The sandbox's /dev, all of it (the helper adds nothing): the harmless character devices, a
 * private devpts for terminals (ptmx links into it), a size-limited /dev/shm for POSIX shared
 * memory, and the usual links to the process's own fds.
 */
export const DEV: Omit<NativeDev, 'op' | 'dest'> = {
  size: 1024 ** 2,
  devices: ['null', 'zero', 'full', 'random', 'urandom', 'tty'],
  pts: true,
  shm: { size: 64 * 1024 ** 2 },
  links: [
    { name: 'ptmx', target: 'pts/ptmx' },
    { name: 'fd', target: '/proc/self/fd' },
    { name: 'stdin', target: '/proc/self/fd/0' },
    { name: 'stdout', target: '/proc/self/fd/1' },
    { name: 'stderr', target: '/proc/self/fd/2' },
  ],
};
/** The device paths of DEV the workload opens (for landlock): the devices and the pty directory. */
export const DEV_PATHS = [...DEV.devices.map((d) => `/dev/${d}`), ...(DEV.pts ? ['/dev/pts'] : [])];
export const RESERVED_DESTS = ['/proc', '/dev', '/run/clawjail'];
export const GENERATED_ETC = ['/etc/hosts', '/etc/resolv.conf', '/etc/passwd', '/etc/group'];

/**
 * Files of a fresh /proc that describe the host or its kernel's internals, not the sandbox, and
 * that nothing an agent runs needs: each is replaced by an empty read-only file (a directory by
 * an empty read-only tmpfs). Container runtimes hide most of the same set (moby's default masked
 * paths); the boot command line, bootconfig, kallsyms and modules are hidden here too. Entries a
 * kernel build lacks are skipped.
 */
export const PROC_MASKED = [
  '/proc/acpi', // firmware tables and power events
  '/proc/asound', // the host's sound cards
  '/proc/bootconfig', // the boot configuration (Linux 5.5+ with bootconfig)
  '/proc/cmdline', // the host's kernel command line: boot parameters, sometimes tokens or paths
  '/proc/interrupts', // per-CPU interrupt counts: the host's devices and a side channel on their activity
  '/proc/kallsyms', // kernel symbol addresses, shown to every process when the host lowers kptr_restrict/perf_event_paranoid (a KASLR bypass)
  '/proc/kcore', // physical memory as a core file
  '/proc/keys', // kernel keyrings visible to the caller (keyring calls are denied by seccomp too)
  '/proc/latency_stats', // scheduler latency records of every host task
  '/proc/modules', // the host's loaded modules, with addresses under the same rule as kallsyms
  '/proc/sched_debug', // every host task's name and pid (moved to debugfs in 5.13)
  '/proc/scsi', // the host's disks
  '/proc/timer_list', // every armed timer with its owner's pid and name
  '/proc/timer_stats', // timer usage per host task (removed in 4.11)
];

/**
 * Kernel tunables and interfaces in /proc that are writable to some caller: read-only inside, so
 * neither a file opened with a loose mode (/proc/sys/kernel/ns_last_pid is 0666) nor one the
 * sandbox's user namespace owns can be written (moby's default read-only paths).
 */
export const PROC_READ_ONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export function buildMounts(input: MountInput): MountResult {
  const { profile, facts } = input;
  const mounts: NativeMount[] = [];
  const warnings: string[] = [];
  const readOnlyPaths: string[] = [];
  const readWritePaths: string[] = [];

  for (const path of profile.filesystem.system) {
    const f = facts[path];
    if (!f || f.kind === 'missing') continue;
    if (f.kind === 'symlink') {
      mounts.push({ op: 'symlink', dest: path, target: f.link! });
    } else if (f.kind === 'dir' || f.kind === 'file') {
      mounts.push({ op: 'bind', src: path, dest: path, readonly: true });
      readOnlyPaths.push(path);
    }
  }

  const etcMounted = readOnlyPaths.some((p) => p === '/etc');
  if (etcMounted) {
    for (const [dest, content] of generatedEtc(profile, input.sandboxUser)) {
      mounts.push({ op: 'file', dest: resolveInsideLink(dest, facts[dest]), content, mode: 0o444 });
    }
  }

  mounts.push({ op: 'proc', dest: '/proc' });
  for (const dest of PROC_MASKED) mounts.push({ op: 'mask', dest });
  for (const dest of PROC_READ_ONLY) mounts.push({ op: 'readonly', dest });
  mounts.push({ op: 'dev', dest: '/dev', ...structuredClone(DEV) });
  // The workload's terminal lives in the host's devpts, which is not inside: bound at
  // /dev/console it can be found by ttyname() (tty prints /dev/console), as in containers.
  if (input.terminal) mounts.push({ op: 'bind', src: input.terminal, dest: '/dev/console' });
  mounts.push({ op: 'tmpfs', dest: '/tmp', size: input.tmpSizeBytes, mode: 0o1777 });
  mounts.push({ op: 'dir', dest: '/run/clawjail', mode: 0o755 });
  mounts.push({ op: 'bind', src: input.sandboxHostDir, dest: '/sandbox', dirOnly: true });
  readWritePaths.push('/sandbox', '/tmp', ...(DEV.shm ? ['/dev/shm'] : []));

  const binds = resolveBinds(input, warnings);
  for (const b of binds) {
    mounts.push({ op: 'bind', src: b.resolved, dest: b.dest, readonly: b.readonly });
    if (!b.landlock) continue;
    (b.readonly ? readOnlyPaths : readWritePaths).push(b.dest);
  }
  return { mounts, binds, readOnlyPaths, readWritePaths, warnings };
}

/** Validates and orders the extra binds; refuses rather than guesses. */
export function resolveBinds(input: MountInput, warnings: string[]): ResolvedBind[] {
  const out: ResolvedBind[] = [];
  const all: [Bind, boolean][] = [
    ...input.profile.filesystem.ro.map((b): [Bind, boolean] => [b, true]),
    ...input.profile.filesystem.rw.map((b): [Bind, boolean] => [b, false]),
  ];
  for (const [b, readonly] of all) {
    const src = input.expand(b.src);
    const dest = posix.normalize(b.dest ?? src);
    const flag = readonly ? '--ro' : '--rw';
    if (dest === '/') {
      throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `${flag} ${b.src}: binding over / is refused`, {
        hint: 'bind the directories you need at their own paths instead',
      });
    }
    for (const reserved of RESERVED_DESTS) {
      if (dest === reserved || dest.startsWith(reserved + '/')) {
        throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `${flag} ${b.src}:${dest}: binding over ${reserved} is refused (clawjail builds it)`, {
          hint: 'choose another destination inside the sandbox',
        });
      }
    }
    const f = input.facts[src];
    if (!f || f.kind === 'missing' || !f.real) {
      if (b.optional) {
        warnings.push(`${flag} ${src}: source does not exist; skipped (optional)`);
        continue;
      }
      throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `${flag} ${src}: the source does not exist on the host${f?.kind === 'symlink' ? ` (it is a dangling symlink to ${f.link})` : ''}`, {
        hint: 'create it, fix the path, or mark the bind optional',
        path: src,
      });
    }
    refuseDangerousSource(flag, b.src, f.real, readonly, input.protectedPaths ?? []);
    if (f.real !== src) warnings.push(`${flag} ${src}: resolves to ${f.real} (a symlink is on the way); binding ${f.real}`);
    out.push({ src, resolved: f.real, dest, readonly, landlock: b.landlock, isDir: f.realKind === 'dir' });
  }
  // Parents before children; equal depth keeps profile order.
  return out
    .map((b, i) => ({ b, i }))
    .sort((x, y) => depth(x.b.dest) - depth(y.b.dest) || x.i - y.i)
    .map((x) => x.b);
}

/** Host filesystems of the kernel's own: never bound read-write; the host's /proc not even read-only. */
const KERNEL_SOURCES = ['/proc', '/sys', '/dev'];

const within = (p: string, dir: string): boolean => dir === '/' || p === dir || p.startsWith(dir + '/');

/**
 * A bind source is checked after resolving symlinks, whatever its destination: a read-write `/`
 * is the whole host; a read-write parent of the sandbox's state or policy lets the workload
 * rewrite its own rules for the next run; the host's /proc shows the supervisor's environment.
 */
function refuseDangerousSource(flag: string, text: string, real: string, readonly: boolean, protectedPaths: ProtectedPath[]): void {
  const refuse = (why: string, hint: string): never => {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `${flag} ${text}${real !== text ? ` (${real})` : ''}: ${why}`, { hint, path: real });
  };
  if (within(real, '/proc')) refuse("the host's /proc is never bound: it shows host processes and their environment", 'the sandbox has its own /proc');
  if (readonly) return;
  if (real === '/') refuse('the host root is never bound read-write', 'bind the directories you need, read-write only where the workload must write');
  for (const k of KERNEL_SOURCES) {
    if (within(real, k)) refuse(`${k} is never bound read-write`, `bind it with --ro if the workload must read it${k === '/dev' ? '; the sandbox has its own /dev' : ''}`);
  }
  for (const { path, what } of protectedPaths) {
    if (!within(path, real)) continue;
    refuse(
      `it contains ${path}, the sandbox's ${what}; the workload could change it for the runs that follow`,
      what === 'clawjail installation'
        ? 'install clawjail outside the directories you bind read-write (e.g. npm install -g), or bind this one with --ro'
        : 'bind a directory that does not contain it, or bind it with --ro',
    );
  }
}

const depth = (p: string): number => p.split('/').filter(Boolean).length;

/** A generated file replaces what the host path points to; an absolute link lands inside. */
function resolveInsideLink(dest: string, fact: PathFacts[string] | undefined): string {
  if (!fact || fact.kind !== 'symlink' || !fact.link) return dest;
  return posix.normalize(fact.link.startsWith('/') ? fact.link : posix.join(posix.dirname(dest), fact.link));
}

function generatedEtc(profile: Profile, user: { uid: number; gid: number }): [string, string][] {
  const host = profile.process.hostname;
  return [
    ['/etc/hosts', `127.0.0.1\tlocalhost inference.local\n::1\tlocalhost\n127.0.1.1\t${host}\n`],
    [
      '/etc/resolv.conf',
      '# clawjail: there is no resolver inside the sandbox. Names are resolved by the egress proxy\n# (HTTP_PROXY / HTTPS_PROXY); direct DNS queries fail at once.\noptions attempts:1 timeout:1\n',
    ],
    [
      '/etc/passwd',
      `root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:${user.uid}:${user.gid}:clawjail sandbox:/sandbox:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    ],
    ['/etc/group', `root:x:0:\nsandbox:x:${user.gid}:\nnogroup:x:65534:\n`],
  ];
}

/** Bytes from "256m", "2g", "1.5g", or a number. */
export function parseSize(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgKMG]?)$/.exec(v.trim());
  if (!m) throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `bad size '${v}'`, { hint: 'use a byte count or a number with k, m or g' });
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * mult);
}
