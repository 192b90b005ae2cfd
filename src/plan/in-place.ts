import { posix } from 'node:path';
import { ClawjailError } from '../errors.js';
import type { PathFacts } from '../host/path-facts.js';
import { FORWARDED_SIGNALS } from '../policy/signals.js';
import type { Profile } from '../profile/schema.js';
import type { SeccompAllow, SeccompConfig } from '../profile/seccomp.js';
import { resolveArgValue } from '../policy/seccomp/values.js';
import { buildEnv, PATH_CANDIDATES } from './env.js';
import { buildInferenceEnv } from './inference-env.js';
import { buildLandlockRequest, describeLandlock, downgradeLandlock, NET } from './landlock.js';
import { buildRlimits } from './limits.js';
import type { ModeDecision, WorkloadIdentity } from './mode.js';
import { DEV_PATHS } from './mounts.js';
import { planCgroup, refuseCredentialPassthrough, type BuildPlanInput, type LaunchPlan } from './plan.js';
import { nativeSeccomp } from './seccomp/install.js';
import { buildEgressSection, buildInferenceSection } from './service-sections.js';
import type { LayerReport, NativePlan } from './types.js';

/*
 * In-place mode: no new namespaces (a container that forbids them). The workload runs in the
 * container's own pid/mount/net namespaces, confined by what needs no namespace: landlock for the
 * filesystem (the container's own paths), for TCP (connect only to the proxy and router ports the
 * supervisor listens on at 127.0.0.1) and for scopes; seccomp (today's list, plus no non-TCP inet
 * sockets, no netlink); rlimits; every capability dropped; no_new_privs; the clean environment.
 */

/** Where the supervisor listens on the container's loopback for this sandbox. */
export interface InPlacePorts {
  egress?: number;
  inference?: number;
}

export interface InPlacePlanInput extends BuildPlanInput {
  decision: ModeDecision;
  identity: WorkloadIdentity;
  ports: InPlacePorts;
}

/** Paths whose facts the in-place planner needs (beyond the system paths and binds). */
export const IN_PLACE_PATHS = ['/proc', '/tmp', '/dev', '/dev/shm', ...DEV_PATHS];

const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;
const SOCK_STREAM = 1;
const SOCK_TYPE_MASK = 0xf;
const IPPROTO_TCP = 6;
/** send*(…, MSG_FASTOPEN): an implicit connect that landlock's connect rules never see. */
const MSG_FASTOPEN = 0x20000000;

/** Calls a namespace-less sandbox must never get back through a profile's allow entry. */
const ALWAYS_DENIED = ['mount', 'umount2', 'pivot_root', 'chroot', 'setns', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr'];

function firstArgIs(a: SeccompAllow, families: number[]): boolean {
  const c = a.args.find((x) => x.index === 0 && x.op === 'eq');
  if (!c) return false;
  try {
    return families.includes(Number(resolveArgValue(c.value, c.width)));
  } catch {
    return false;
  }
}

/**
 * The seccomp section for in-place mode, pure. Landlock's TCP rules do not cover UDP, raw,
 * SCTP or MPTCP sockets, and without a network namespace those reach the container's network
 * directly; so inet sockets are allowed only as SOCK_STREAM with protocol 0 or IPPROTO_TCP, and
 * netlink not at all. The namespace and mount denials are appended unconditionally.
 */
export function inPlaceSeccomp(config: SeccompConfig): SeccompConfig {
  if (config.mode === 'off') return config;
  const allow = config.allow.filter(
    (a) => !(a.syscall === 'socket' && firstArgIs(a, [AF.INET, AF.INET6, AF.NETLINK])) && !(ALWAYS_DENIED.includes(a.syscall) && a.args.length === 0),
  );
  for (const family of ['AF_INET', 'AF_INET6']) {
    for (const protocol of [0, IPPROTO_TCP]) {
      allow.push({
        syscall: 'socket',
        args: [
          { index: 0, op: 'eq', value: family, width: 32 },
          { index: 1, op: 'masked-eq', mask: SOCK_TYPE_MASK, value: SOCK_STREAM, width: 32 },
          { index: 2, op: 'eq', value: protocol, width: 32 },
        ],
        reason: `in-place: TCP over ${family === 'AF_INET' ? 'IPv4' : 'IPv6'} only (protocol ${protocol}), which landlock confines to the proxy and router ports`,
      });
    }
  }
  const deny = [
    ...config.deny,
    { syscall: 'socket', args: [], errno: 'EPERM', reason: 'in-place: UDP, raw, SCTP, MPTCP and netlink sockets reach the container network without landlock; only the families allowed are usable' },
    ...ALWAYS_DENIED.map((syscall) => ({ syscall, args: [], errno: 'EPERM', reason: 'in-place: the workload must not reshape the container\'s mounts or join namespaces' })),
    { syscall: 'clone3', args: [], errno: 'ENOSYS', reason: 'in-place: flags unreadable by a filter; glibc falls back to clone' },
    // TCP Fast Open's sendto/sendmsg connects without the connect hook landlock checks (landlock-lsm
    // issue 41): to any address. EOPNOTSUPP is what the kernel says when TFO is off, so clients
    // fall back to connect(), which landlock does check.
    ...([['sendto', 3], ['sendmsg', 2], ['sendmmsg', 3]] as const).map(([syscall, index]) => ({
      syscall,
      args: [{ index, op: 'masked-eq' as const, mask: MSG_FASTOPEN, value: MSG_FASTOPEN, width: 32 as const }],
      errno: 'EOPNOTSUPP',
      reason: 'in-place: MSG_FASTOPEN connects to any address without landlock\'s connect check',
    })),
    { syscall: 'unshare', args: [], errno: 'EPERM', reason: 'in-place: no new namespaces (allowed without CLONE_NEW* flags by the clone/unshare allow entries)' },
    { syscall: 'clone', args: [], errno: 'EPERM', reason: 'in-place: no new namespaces (allowed without CLONE_NEW* flags by the clone allow entry)' },
  ];
  const nsMask = 'CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME';
  for (const syscall of ['clone', 'unshare']) {
    if (!allow.some((a) => a.syscall === syscall && a.args.length > 0)) {
      allow.push({ syscall, args: [{ index: 0, op: 'masked-eq', mask: nsMask, value: 0, width: 64 }], reason: 'in-place: fork, threads and unshare without new namespaces' });
    }
  }
  return { ...config, allow, deny };
}

/** What the workload may reach, as plain lists (for the ruleset and the report). */
interface InPlaceFs {
  readExec: string[];
  readOnly: string[];
  readWrite: string[];
  devices: string[];
  warnings: string[];
}

const exists = (facts: PathFacts, p: string): boolean => {
  const f = facts[p];
  return f !== undefined && f.kind !== 'missing';
};

function planFs(input: InPlacePlanInput): InPlaceFs {
  const { profile, pathFacts: facts } = input;
  const warnings: string[] = [];
  const system = profile.filesystem.system.filter((p) => exists(facts, p));
  const readExec = system.filter((p) => p !== '/etc');
  const readOnly = [...(system.includes('/etc') ? ['/etc'] : []), ...(exists(facts, '/proc') ? ['/proc'] : [])];
  const readWrite = [input.sandboxDir.host, ...['/tmp', '/dev/shm'].filter((p) => exists(facts, p))];
  for (const [list, rw] of [[profile.filesystem.ro, false], [profile.filesystem.rw, true]] as const) {
    for (const b of list) {
      const src = input.expand(b.src);
      if (b.dest !== undefined && b.dest !== src) {
        throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `in-place mode cannot mount ${src} at ${b.dest}: there is no mount namespace, so a path is reachable only where it is`, {
          hint: `give --${rw ? 'rw' : 'ro'} ${src} without :DEST (landlock then grants access to ${src} itself), or use namespaces mode`,
          path: src,
        });
      }
      const f = facts[src];
      if (!f || f.kind === 'missing' || !f.real) {
        if (b.optional) {
          warnings.push(`${src}: the source does not exist; skipped (optional)`);
          continue;
        }
        throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `${src}: the source does not exist`, { hint: 'create it, or mark the bind optional', path: src });
      }
      if (!b.landlock) continue;
      (rw ? readWrite : readExec).push(f.real);
    }
  }
  const devices = DEV_PATHS.filter((p) => exists(facts, p));
  return {
    readExec: [...readExec, ...profile.landlock.readOnly],
    readOnly,
    readWrite: [...new Set([...readWrite, ...profile.landlock.readWrite])],
    devices,
    warnings,
  };
}

/**
 * Step 3 for in-place mode, pure: the plan, or an error naming the layer this host cannot
 * provide. Landlock is the only filesystem boundary here, so a kernel without it refuses unless
 * landlock.mode is off; egress needs landlock's TCP rules (ABI 4+).
 */
export function buildInPlacePlan(input: InPlacePlanInput): LaunchPlan {
  const { profile, host, decision, identity, ports } = input;
  const warnings: string[] = decision.warning ? [decision.warning] : [];
  const layers: LayerReport[] = [];
  const ll = profile.landlock;

  layers.push({
    layer: 'namespaces',
    status: profile.mode === 'in-place' ? 'off' : 'unavailable',
    detail: 'in-place mode: no new namespaces; the workload shares the container\'s pid, ipc, mount, uts and network namespaces and sees its /proc',
    ...(profile.mode === 'in-place' ? {} : { hint: decision.reason }),
  });
  layers.push({ layer: 'identity', status: 'enforced', detail: `${identity.detail}${identity.change ? '; supplementary groups dropped' : ''}` });

  if (profile.network.approvals.enabled && profile.network.mode === 'proxy' && !identity.change && host.uid === identity.uid) {
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', 'approvals cannot be offered in in-place mode when the workload runs as the supervisor\'s own uid: it could reach the approvals control socket and approve itself', {
      hint: 'run clawjail as root (the workload then runs as identity.uid), turn approvals off, or use namespaces mode',
    });
  }

  const fs = planFs(input);
  warnings.push(...fs.warnings);
  const connectPorts = [ports.egress, ports.inference].filter((p): p is number => p !== undefined);
  const request = buildLandlockRequest({
    readOnly: fs.readOnly,
    readExec: fs.readExec,
    readWrite: fs.readWrite,
    devices: fs.devices,
    connectPorts: [...connectPorts, ...ll.connectPorts],
    bindPorts: [...ll.bindPorts, ...profile.publish.map((p) => p.port)],
    logDenials: ll.logDenials,
  });
  // The builder grants READ_DIR beneath / — harmless over namespaces mode's own small root, but
  // here it would list every directory of the container; without it `ls /` fails, lookups work.
  request.rules = request.rules.filter((r) => r.path !== '/' && (r.path !== '/dev' || fs.devices.length > 0));

  let landlock: NativePlan['workload']['landlock'] = null;
  let fsStatus: LayerReport;
  let netEnforced = false;
  if (ll.mode === 'off' && identity.uid === host.uid) {
    // Landlock is also what keeps a same-uid workload out of the supervisor's /proc/PID/environ
    // and memory (where route keys and the caller's environment live); file permissions do not.
    throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', 'in-place mode with landlock off would let the workload, which runs as the supervisor\'s own uid, read the supervisor\'s environment and memory through /proc', {
      hint: 'keep landlock on, or run clawjail as root so the workload runs as identity.uid',
      step: 'landlock',
    });
  }
  if (ll.mode === 'off') {
    layers.push({ layer: 'landlock', status: 'off', detail: 'landlock.mode is off' });
    fsStatus = { layer: 'filesystem', status: 'off', detail: 'landlock.mode is off: in-place mode has no other filesystem boundary, so the workload can read and write whatever its uid may', hint: 'remove landlock.mode: off' };
    warnings.push('in-place mode with landlock off: the filesystem is confined only by file permissions');
  } else {
    const abi = Math.min(host.landlock.abi, ll.maxAbi ?? Number.MAX_SAFE_INTEGER);
    const d = downgradeLandlock(abi, request);
    if (d.status === 'unavailable') {
      const reason = host.landlock.abi === 0 ? host.landlock.reason : 'landlock.maxAbi is 0';
      throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `in-place mode needs landlock, the only filesystem boundary without a mount namespace, but it is unavailable: ${reason}`, {
        hint: 'run on Linux >= 5.13 with landlock in lsm= (or allow user namespaces for namespaces mode); landlock.mode: off runs without it, confined only by file permissions',
        step: 'landlock',
      });
    }
    const report = describeLandlock(d, ll.mode);
    if (ll.mode === 'required' && d.status !== 'enforced') {
      throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `landlock is required but only partly enforceable at ABI ${d.abi}: missing ${d.missing.join(', ')}`, {
        hint: 'run on a kernel with a newer landlock ABI, or set landlock.mode: best-effort',
        step: 'landlock',
      });
    }
    if (d.status !== 'enforced') warnings.push(`landlock ${d.status}: ${report.detail}`);
    landlock = d.ruleset;
    netEnforced = (d.ruleset!.handledNet & NET.CONNECT_TCP) !== 0;
    layers.push(report);
    fsStatus = {
      layer: 'filesystem',
      status: d.ruleset!.handledFs ? 'enforced' : 'unavailable',
      detail: `landlock (the container's own paths): read+execute ${fs.readExec.join(' ')}; read-only ${fs.readOnly.join(' ')}; read/write ${fs.readWrite.join(' ')}${input.sandboxDir.ephemeral ? ' (sandbox dir temporary)' : ''}; nothing else`,
    };
  }
  layers.push(fsStatus);

  // Network: landlock connect rules + the seccomp socket rules together make the proxy the only way out.
  const seccompOn = profile.seccomp.mode === 'enforce' || profile.seccomp.mode === 'required';
  const egressWanted = profile.network.mode === 'proxy' && (profile.network.allow.length > 0 || profile.inference.routes.length > 0);
  const where = connectPorts.length ? `TCP connect only to ${connectPorts.map((p) => `127.0.0.1:${p}`).join(', ')} (landlock matches the port, not the address)` : 'no TCP connect at all';
  if (netEnforced && seccompOn) {
    layers.push({
      layer: 'network',
      status: 'enforced',
      detail: `${where}; no UDP, raw or netlink sockets and no TCP Fast Open sends (seccomp)${ports.egress ? `; egress only through the allowlist proxy at 127.0.0.1:${ports.egress}` : '; no egress'}; inbound: listen() without bind can still take an ephemeral port (the container's network policy governs it)`,
    });
  } else {
    const why = !netEnforced ? `landlock TCP rules are unavailable (ABI ${host.landlock.abi}; they need ABI 4, Linux 6.7)` : `seccomp.mode is ${profile.seccomp.mode}, so UDP and raw sockets are not refused`;
    if (egressWanted && profile.inPlace.network === 'required') {
      throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `in-place mode cannot enforce egress here: ${why}; egress rules or inference routes are configured, so the workload could bypass the proxy`, {
        hint: 'run on Linux >= 6.7 (landlock ABI 4), allow user namespaces for namespaces mode, or set inPlace.network: best-effort to run with egress not enforced',
        step: 'network',
      });
    }
    warnings.push(`egress not enforced: ${why}; the workload can reach the network without the proxy`);
    layers.push({ layer: 'network', status: 'unavailable', mode: profile.inPlace.network, detail: `egress not enforced: ${why}`, hint: 'Linux >= 6.7 with seccomp on enforces egress in place' });
  }

  const services: LaunchPlan['services'] = {};
  if (ports.egress !== undefined) services.egress = { port: ports.egress };
  if (ports.inference !== undefined) services.inference = { port: ports.inference, socket: '' };
  layers.push(
    services.inference
      ? { layer: 'inference', status: 'enforced', detail: `${profile.inference.routes.length} route(s) at 127.0.0.1:${ports.inference} (no unix socket in-place); credentials stay outside` }
      : { layer: 'inference', status: 'off', detail: 'no inference routes' },
  );

  let seccomp: NativePlan['workload']['seccomp'] = null;
  if (profile.seccomp.mode === 'off') {
    layers.push({ layer: 'seccomp', status: 'off', detail: 'seccomp.mode is off' });
  } else if (!host.seccomp.available) {
    throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `seccomp is required (seccomp.mode: ${profile.seccomp.mode}) but unavailable: ${host.seccomp.reason}`, {
      hint: 'use a kernel with CONFIG_SECCOMP_FILTER, or set seccomp.mode: off',
      step: 'seccomp',
    });
  } else if (!input.compileSeccomp) {
    throw new ClawjailError('ERR_CLAWJAIL_PLAN', 'no seccomp compiler was supplied to buildInPlacePlan', { hint: 'this is a bug in the caller of buildInPlacePlan' });
  } else {
    const compiled = input.compileSeccomp(inPlaceSeccomp(profile.seccomp), host.arch);
    seccomp = nativeSeccomp(compiled.program);
    layers.push({
      layer: 'seccomp',
      status: 'enforced',
      ...(profile.seccomp.mode === 'required' ? { mode: 'required' as const } : {}),
      detail: `${profile.seccomp.mode === 'log' ? 'log mode (denials allowed and logged)' : 'denylist enforced'} plus in-place additions (inet only as TCP, no netlink, no mount or namespace calls); ${compiled.instructions} BPF instructions for ${host.arch}${compiled.detail ? `; ${compiled.detail}` : ''}`,
    });
  }

  const { rlimits, notes } = buildRlimits(profile.limits.rlimits, host.rlimits);
  layers.push({
    layer: 'rlimits',
    status: rlimits.length ? 'enforced' : 'off',
    detail:
      (rlimits.length ? rlimits.map((r) => `${r.resource}=${r.soft === r.hard ? r.soft : `${r.soft}/${r.hard}`}`).join(' ') : 'none requested') +
      (notes.length ? ` (${notes.join('; ')})` : '') +
      (identity.uid === 0 ? '; nproc does not bind uid 0' : `; nproc counts every process of uid ${identity.uid} in the container`),
  });
  // Shrinking the bounding set needs CAP_SETPCAP (which `drop: [ALL]` pods lack); without it, an
  // empty permitted set plus no_new_privs still keeps exec from granting any capability.
  const dropBoundingSet = host.isRoot && host.canDropBoundingSet !== false;
  layers.push({
    layer: 'capabilities',
    status: 'enforced',
    detail: `all dropped${dropBoundingSet ? ', the bounding set too' : host.isRoot ? '; the bounding set is kept (no CAP_SETPCAP here), exec cannot add any under no_new_privs' : ''}; no_new_privs`,
  });
  const cgroup = planCgroup(profile, host, input.cgroupDir, layers, warnings);

  refuseCredentialPassthrough(profile);
  const sandboxDir = input.sandboxDir.host;
  const serviceEnv = ports.inference !== undefined ? buildInferenceEnv(profile.inference, `http://127.0.0.1:${ports.inference}`) : {};
  delete serviceEnv.CLAWJAIL_INFERENCE_SOCKET;
  const env = buildEnv({
    hostEnv: input.hostEnv,
    pathDirs: PATH_CANDIDATES.filter((d) => exists(input.pathFacts, d)),
    pass: profile.env.pass,
    set: { HOME: sandboxDir, CLAWJAIL_MODE: 'in-place', ...profile.env.set },
    ...(ports.egress !== undefined ? { proxyPort: ports.egress } : {}),
    serviceEnv,
    sandboxName: input.name,
  });

  const native: NativePlan = {
    version: 1,
    supervisorPid: input.supervisorPid,
    hostname: profile.process.hostname,
    namespaces: [],
    identity: { uid: identity.uid, gid: identity.gid, hostUid: identity.uid, hostGid: identity.gid, dropSupplementaryGroups: identity.change },
    mounts: [],
    services: [],
    cgroupProcs: cgroup ? posix.join(cgroup.dir, 'cgroup.procs') : null,
    forwardSignals: [...FORWARDED_SIGNALS],
    inPlace: { changeIdentity: identity.change, dropBoundingSet, allowRoot: identity.uid === 0 },
    workload: {
      argv: input.command,
      env,
      cwd: profile.process.cwd === '/sandbox' ? sandboxDir : profile.process.cwd,
      newSession: !profile.process.tty,
      rlimits,
      landlock,
      seccomp,
    },
  };
  return {
    name: input.name,
    native,
    sandboxDir: input.sandboxDir,
    services,
    egress: buildEgressSection(profile, input),
    inference: buildInferenceSection(profile),
    publish: profile.publish,
    cgroup,
    binds: [],
    report: { sandbox: input.name, mode: 'in-place', modeReason: decision.reason, layers },
    warnings,
  };
}
