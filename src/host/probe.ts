import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addon, type NativeProbe } from '../native.js';
import { errnoName } from '../errno.js';

/** What this host lets clawjail enforce, and why not where it cannot. */
export interface HostFacts {
  kernelRelease: string;
  arch: 'x86_64' | 'aarch64' | string;
  uid: number;
  gid: number;
  isRoot: boolean;
  userns: { available: boolean | 'unknown'; errno?: number; reason?: string };
  landlock: { abi: number; errno?: number; reason?: string };
  seccomp: { available: boolean; alreadyFiltered: boolean; reason?: string };
  cgroup: CgroupFacts;
  container: { inContainer: boolean; evidence: string[] };
  rlimits: NativeProbe['rlimits'];
  /**
   * The ids that exist in clawjail's own user namespace (/proc/self/uid_map, gid_map). Absent in
   * the initial namespace, where every id exists.
   */
  idMap?: { uid: IdRange[]; gid: IdRange[] };
  /** CAP_SETPCAP is in this process's effective set (it can shrink a bounding set). */
  canDropBoundingSet?: boolean;
}

/** One line of a uid_map/gid_map: `count` ids from `inside` on (as seen here). */
export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

/** Parses /proc/PID/uid_map text; undefined for the initial namespace's identity map. */
export function parseIdMap(text: string): IdRange[] | undefined {
  const ranges = text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isFinite))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }));
  const whole = ranges.length === 1 && ranges[0]!.inside === 0 && ranges[0]!.outside === 0 && ranges[0]!.count === 4294967295;
  return whole ? undefined : ranges;
}

export interface CgroupFacts {
  /** The cgroup v2 directory this process lives in, when cgroup v2 is mounted. */
  dir?: string;
  controllers: string[];
  writable: boolean;
  reason?: string;
}


function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

let recent: { at: number; facts: HostFacts } | undefined;
let recentChecked: { at: number; facts: HostFacts } | undefined;
const FRESH_MS = 2000;

/**
 * Step 2: facts about the host. `checkUserns` forks a throwaway child; launch skips it. An
 * orchestrator launching in bursts reuses facts for two seconds (they change on reboot or
 * reconfiguration, not between launches); a wrong fact can only make a launch fail, never weaken
 * it, since every layer is set up and checked by the kernel at launch.
 */
export function probeHost(options: { checkUserns?: boolean; fresh?: boolean } = {}): HostFacts {
  const now = Date.now();
  // The user-namespace trial (auto mode in a likely container) is reused the same way: a burst of
  // launches forks one throwaway child, not one each. doctor asks for fresh facts.
  const cached = options.checkUserns ? recentChecked : recent;
  if (!options.fresh && cached && now - cached.at < FRESH_MS) return structuredClone(cached.facts);
  const facts = probeHostNow(options);
  if (options.checkUserns) recentChecked = { at: now, facts: structuredClone(facts) };
  else recent = { at: now, facts: structuredClone(facts) };
  return facts;
}

function probeHostNow(options: { checkUserns?: boolean }): HostFacts {
  const n = addon().probe({ skipUserns: !options.checkUserns });
  const container = detectContainer();
  const status = readTrim('/proc/self/status') ?? '';
  const alreadyFiltered = /^Seccomp:\s*2/m.test(status);
  return {
    kernelRelease: n.kernelRelease,
    arch: n.machine,
    uid: n.uid,
    gid: n.gid,
    isRoot: n.euid === 0,
    userns:
      n.usernsErrno === undefined
        ? { available: 'unknown' }
        : n.usernsErrno === 0
          ? { available: true }
          : { available: false, errno: n.usernsErrno, reason: explainUsernsFailure(n.usernsErrno, container.inContainer, alreadyFiltered) },
    landlock:
      n.landlockAbi > 0
        ? { abi: n.landlockAbi }
        : { abi: 0, errno: n.landlockErrno, reason: explainLandlockFailure(n.landlockErrno) },
    seccomp:
      n.seccompMode >= 0
        ? { available: true, alreadyFiltered }
        : { available: false, alreadyFiltered, reason: `prctl(PR_GET_SECCOMP) failed with ${errnoName(n.seccompErrno)}: the kernel lacks CONFIG_SECCOMP_FILTER` },
    cgroup: probeCgroup(),
    container,
    rlimits: n.rlimits,
    ...idMapFacts(),
    canDropBoundingSet: hasCapability(status, 8 /* CAP_SETPCAP */),
  };
}

function hasCapability(status: string, cap: number): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? (BigInt(`0x${m[1]}`) & (1n << BigInt(cap))) !== 0n : false;
}

function idMapFacts(): Pick<HostFacts, 'idMap'> {
  const uid = parseIdMap(readTrim('/proc/self/uid_map') ?? '');
  const gid = parseIdMap(readTrim('/proc/self/gid_map') ?? '');
  return uid || gid ? { idMap: { uid: uid ?? [{ inside: 0, outside: 0, count: 4294967295 }], gid: gid ?? [{ inside: 0, outside: 0, count: 4294967295 }] } } : {};
}

/** Why clone(CLONE_NEWUSER) failed, from the knobs that can cause it. */
export function explainUsernsFailure(errno: number, inContainer: boolean, seccompFiltered: boolean): string {
  const name = errnoName(errno);
  if (readTrim('/proc/sys/kernel/unprivileged_userns_clone') === '0')
    return `${name}: unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0); run \`sysctl -w kernel.unprivileged_userns_clone=1\` as root`;
  if (readTrim('/proc/sys/user/max_user_namespaces') === '0')
    return `${name}: user namespaces are disabled (sysctl user.max_user_namespaces=0); set it to a positive number`;
  if (readTrim('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1')
    return `${name}: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); add an AppArmor profile allowing userns for node, or set the sysctl to 0`;
  if (errno === 28 && parseIdMap(readTrim('/proc/self/uid_map') ?? '') !== undefined)
    return `${name}: clawjail runs inside a user namespace whose creator forbids nested ones (a container started with user namespaces disabled, e.g. bwrap --disable-userns or a runtime setting user.max_user_namespaces=0 for it)`;
  if (errno === 28) return `${name}: the user namespace limit is reached (user.max_user_namespaces, or nesting deeper than 32)`;
  if (inContainer && seccompFiltered)
    return `${name}: the container's seccomp profile forbids creating namespaces (Docker's default does); run the container with --security-opt seccomp=<a profile allowing clone/unshare of namespaces> or use clawjail outside it`;
  if (seccompFiltered && errno === 1)
    return `${name}: a seccomp filter on clawjail's own process (set by whatever started it: a container runtime's default profile, such as Docker's, or a sandbox) forbids creating namespaces`;
  if (inContainer) return `${name}: the container runtime forbids creating user namespaces`;
  return `${name}: the kernel refused to create a user namespace`;
}

export function explainLandlockFailure(errno: number): string {
  if (errno === 38) return 'ENOSYS: this kernel is built without landlock (Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK)';
  if (errno === 95) return 'EOPNOTSUPP: landlock is built in but disabled at boot (add landlock to the lsm= kernel parameter)';
  if (errno === 1) return 'EPERM: a seccomp filter (e.g. a container runtime\'s) blocks the landlock system calls';
  return `${errnoName(errno)}: landlock_create_ruleset failed`;
}

function detectContainer(): { inContainer: boolean; evidence: string[] } {
  const evidence: string[] = [];
  if (existsSync('/.dockerenv')) evidence.push('/.dockerenv exists');
  if (existsSync('/run/.containerenv')) evidence.push('/run/.containerenv exists');
  if (process.env.container) evidence.push(`container=${process.env.container}`);
  const cg = readTrim('/proc/1/cgroup') ?? '';
  if (/docker|kubepods|containerd|libpod|lxc/.test(cg)) evidence.push('/proc/1/cgroup names a container runtime');
  const uidMap = parseIdMap(readTrim('/proc/self/uid_map') ?? '');
  if (uidMap) evidence.push(`a user namespace maps only uids ${uidMap.map((r) => `${r.inside}-${r.inside + r.count - 1}`).join(', ')}`);
  return { inContainer: evidence.length > 0, evidence };
}

function probeCgroup(): CgroupFacts {
  const mountinfo = readTrim('/proc/self/mountinfo') ?? '';
  let root: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post || !post.startsWith('cgroup2 ')) continue;
    const mountPoint = pre.split(' ')[4];
    if (mountPoint && (root === undefined || mountPoint === '/sys/fs/cgroup')) root = mountPoint;
  }
  if (!root) return { controllers: [], writable: false, reason: 'cgroup v2 is not mounted' };
  const self = (readTrim('/proc/self/cgroup') ?? '').split('\n').find((l) => l.startsWith('0::'));
  const rel = self ? self.slice(3) : '/';
  const dir = join(root, rel);
  const controllers = (readTrim(join(dir, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean);
  let writable = false;
  try {
    accessSync(dir, constants.W_OK);
    writable = true;
  } catch {
    writable = false;
  }
  const wanted = ['memory', 'pids', 'cpu'];
  const missing = wanted.filter((c) => !controllers.includes(c));
  let reason: string | undefined;
  if (!writable) reason = `cgroup v2 directory ${dir} is not writable by this user (no delegated subtree; with systemd: run under \`systemd-run --user --scope -p Delegate=yes\`)`;
  else if (missing.length)
    reason = `cgroup v2 at ${dir} does not offer the ${missing.join(', ')} controller${missing.length > 1 ? 's' : ''}${root !== '/sys/fs/cgroup' ? ` (hybrid setup: they are on cgroup v1; cgroup v2 is at ${root})` : ''}`;
  return { dir, controllers, writable, ...(reason ? { reason } : {}) };
}
