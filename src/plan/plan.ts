import { posix } from 'node:path';
import { ClawjailError } from '../errors.js';
import type { HostFacts } from '../host/probe.js';
import type { PathFacts } from '../host/path-facts.js';
import { EGRESS_PORT, INFERENCE_PORT, INFERENCE_SOCKET_PATH as INFERENCE_SOCKET, LOOPBACK_HOST } from '../policy/addresses.js';
import { FORWARDED_SIGNALS } from '../policy/signals.js';
import type { Profile } from '../profile/schema.js';
import { buildEnv, PATH_CANDIDATES } from './env.js';
import { buildInferenceEnv } from './inference-env.js';
import { nativeSeccomp } from './seccomp/install.js';
import { buildLandlockRequest, describeLandlock, downgradeLandlock } from './landlock.js';
import { buildRlimits } from './limits.js';
import { buildMounts, DEV_PATHS, parseSize, type ProtectedPath, type ResolvedBind } from './mounts.js';
import { buildEgressSection, buildInferenceSection, type EgressPlan, type InferencePlan } from './service-sections.js';
import type { EnforcementReport, LayerReport, NativeIdentity, NativePlan, NativeService } from './types.js';
import { chooseIdentity } from './mode.js';

export interface SeccompCompiler {
  (config: Profile['seccomp'], arch: string): { program: Buffer; instructions: number; detail?: string };
}

export interface BuildPlanInput {
  profile: Profile;
  host: HostFacts;
  pathFacts: PathFacts;
  command: string[];
  name: string;
  supervisorPid: number;
  sandboxDir: { host: string; ephemeral: boolean };
  /** Real host paths no read-write bind may contain (the sandbox's state, its policy, clawjail). */
  protectedPaths?: ProtectedPath[];
  /** With process.tty: the host path of the supervisor's terminal, when it has one. */
  terminal?: string;
  hostEnv: Record<string, string | undefined>;
  expand: (p: string) => string;
  /** Where this sandbox's cgroup would be created (from the host facts), if anywhere. */
  cgroupDir?: string;
  compileSeccomp?: SeccompCompiler;
  /** The launch's audit log option (`--audit-log`); it wins over network.auditLog. */
  auditLog?: string;
  /** The user's own profile file, where `approve --always` writes rules (shown as egress.persistTo). */
  profileFile?: string;
}

export interface LaunchPlan {
  name: string;
  native: NativePlan;
  sandboxDir: { host: string; ephemeral: boolean };
  /** loopback: host 127.0.0.1 ports that allow rules name, served inside and forwarded out. */
  services: { egress?: { port: number }; inference?: { port: number; socket: string }; loopback?: number[] };
  /** What the egress proxy, approvals and loopback forwards enforce (services.egress says whether they run). */
  egress: EgressPlan;
  /** The inference routes, each with its credential's source (never its value). */
  inference: InferencePlan;
  publish: Profile['publish'];
  cgroup: { dir: string; settings: Record<string, string>; mode: 'required' | 'best-effort' } | null;
  binds: ResolvedBind[];
  report: EnforcementReport;
  warnings: string[];
}

/**
 * Step 3 of the launch, and pure: (profile, host facts, prepared dirs) → the plan, or an error
 * naming the required layer this host cannot provide. No I/O happens here.
 */
export function buildPlan(input: BuildPlanInput): LaunchPlan {
  const { profile, host } = input;
  const warnings: string[] = [];
  const layers: LayerReport[] = [];

  if (host.userns.available === false) {
    throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `cannot create the sandbox: user namespaces are unavailable (${host.userns.reason})`, {
      hint: 'clawjail needs user namespaces; see `clawjail doctor` for this host',
      step: 'namespaces.clone',
      ...(host.userns.errno !== undefined ? { errno: host.userns.errno } : {}),
    });
  }
  refuseServicePortPublish(profile);
  const identity = buildIdentity(profile, host);
  layers.push({ layer: 'namespaces', status: 'enforced', detail: 'user, mount, pid, net, ipc, uts, cgroup' });
  layers.push({
    layer: 'identity',
    status: 'enforced',
    detail: `uid ${identity.uid} inside = host uid ${identity.hostUid}${host.isRoot ? ' (dedicated uid for a root caller)' : ' (the caller\'s own)'}; host root is not mapped`,
  });

  const mountResult = buildMounts({
    profile,
    sandboxHostDir: input.sandboxDir.host,
    protectedPaths: input.protectedPaths ?? [],
    ...(profile.process.tty && input.terminal ? { terminal: input.terminal } : {}),
    facts: input.pathFacts,
    expand: input.expand,
    tmpSizeBytes: parseSize(profile.filesystem.tmpSize),
    sandboxUser: { uid: identity.uid, gid: identity.gid },
  });
  warnings.push(...mountResult.warnings);
  const rwBinds = mountResult.binds.filter((b) => !b.readonly);
  const unwritable = rwBinds.filter((b) => !sandboxCanWrite(input.pathFacts[input.expand(b.src)], identity, host.isRoot));
  for (const b of unwritable) {
    const o = input.pathFacts[input.expand(b.src)]?.realOwner;
    warnings.push(
      `--rw ${b.src}: the sandbox user (host uid ${identity.hostUid}) cannot write to ${b.resolved}${o ? ` (owner uid ${o.uid}, group ${o.gid}, mode ${o.mode.toString(8)})` : ''}; ${b.dest} is read-only in practice` +
        (host.isRoot ? `: chown ${identity.hostUid}:${identity.hostGid} ${b.resolved} to make it writable` : ''),
    );
  }
  layers.push({
    layer: 'filesystem',
    status: 'enforced',
    detail:
      `read-only ${mountResult.readOnlyPaths.join(' ')}; writable /sandbox (${input.sandboxDir.ephemeral ? 'temporary' : input.sandboxDir.host}), /tmp (${profile.filesystem.tmpSize})` +
      rwBinds.filter((b) => !unwritable.includes(b)).map((b) => `, ${b.dest}`).join('') +
      (unwritable.length ? `; bound read-write but not writable by the sandbox user: ${unwritable.map((b) => b.dest).join(', ')}` : ''),
  });

  const services: LaunchPlan['services'] = {};
  const nativeServices: NativeService[] = [];
  if (profile.network.mode === 'proxy') {
    services.egress = { port: EGRESS_PORT };
    nativeServices.push({ name: 'egress', kind: 'tcp', port: EGRESS_PORT });
    const loopback = loopbackForwards(profile);
    if (loopback.length) {
      services.loopback = loopback;
      for (const port of loopback) nativeServices.push({ name: `loopback:${port}`, kind: 'tcp', port });
    }
  }
  if (profile.inference.routes.length > 0) {
    services.inference = { port: INFERENCE_PORT, socket: INFERENCE_SOCKET };
    nativeServices.push({ name: 'inference', kind: 'tcp', port: INFERENCE_PORT });
    nativeServices.push({ name: 'inference.sock', kind: 'unix', path: INFERENCE_SOCKET });
  }
  layers.push(
    profile.network.mode === 'proxy'
      ? {
          layer: 'network',
          status: 'enforced',
          detail:
            `own network namespace (lo only); egress only through the allowlist proxy at 127.0.0.1:${EGRESS_PORT}` +
            (services.loopback ? `; host 127.0.0.1 port(s) ${services.loopback.join(', ')} forwarded by the supervisor after the same checks` : ''),
        }
      : { layer: 'network', status: 'enforced', detail: 'own network namespace (lo only); no egress' },
  );
  layers.push(
    services.inference
      ? { layer: 'inference', status: 'enforced', detail: `${profile.inference.routes.length} route(s) at 127.0.0.1:${INFERENCE_PORT} and ${INFERENCE_SOCKET}; credentials stay outside` }
      : { layer: 'inference', status: 'off', detail: 'no inference routes' },
  );

  // Landlock
  let landlock: NativePlan['workload']['landlock'] = null;
  const ll = profile.landlock;
  if (ll.mode === 'off') {
    layers.push({ layer: 'landlock', status: 'off', detail: 'landlock.mode is off' });
  } else {
    const abi = Math.min(host.landlock.abi, ll.maxAbi ?? Number.MAX_SAFE_INTEGER);
    const reason = host.landlock.abi === 0 ? host.landlock.reason : abi === 0 ? 'landlock.maxAbi is 0' : undefined;
    const request = buildLandlockRequest({
      files: mountResult.binds.filter((b) => !b.isDir).map((b) => b.dest),
      readOnly: ['/proc', ...(mountResult.readOnlyPaths.includes('/etc') ? ['/etc'] : [])],
      readExec: [...mountResult.readOnlyPaths.filter((p) => p !== '/etc'), ...ll.readOnly],
      readWrite: [...mountResult.readWritePaths, ...ll.readWrite],
      devices: [...DEV_PATHS, ...(profile.process.tty && input.terminal ? ['/dev/console'] : [])],
      connectPorts: [...nativeServices.filter((s) => s.kind === 'tcp').map((s) => s.port!), ...ll.connectPorts],
      // A published port is served by a listener inside: it must be allowed to bind it.
      bindPorts: [...ll.bindPorts, ...profile.publish.map((p) => p.port)],
      logDenials: ll.logDenials,
    });
    const d = downgradeLandlock(abi, request);
    if (ll.maxAbi !== undefined && ll.maxAbi < host.landlock.abi) d.missing.push(`(capped at ABI ${ll.maxAbi} by landlock.maxAbi; host has ${host.landlock.abi})`);
    const report = describeLandlock(d, ll.mode, reason);
    if (ll.mode === 'required' && d.status !== 'enforced') {
      throw new ClawjailError(
        'ERR_CLAWJAIL_LAYER_REQUIRED',
        `landlock is required but ${d.status === 'unavailable' ? `unavailable: ${reason}` : `only partly enforceable at ABI ${d.abi}: missing ${d.missing.join(', ')}`}`,
        { hint: 'run on a kernel with a newer landlock ABI, or set landlock.mode: best-effort to run with what this host offers', step: 'landlock' },
      );
    }
    if (d.status !== 'enforced') warnings.push(`landlock ${d.status}: ${report.detail}`);
    landlock = d.ruleset;
    layers.push(report);
  }

  // Seccomp
  let seccomp: NativePlan['workload']['seccomp'] = null;
  if (profile.seccomp.mode === 'off') {
    layers.push({ layer: 'seccomp', status: 'off', detail: 'seccomp.mode is off' });
  } else if (!host.seccomp.available) {
    throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `seccomp is required (seccomp.mode: ${profile.seccomp.mode}) but unavailable: ${host.seccomp.reason}`, {
      hint: 'use a kernel with CONFIG_SECCOMP_FILTER, or set seccomp.mode: off',
      step: 'seccomp',
    });
  } else if (!input.compileSeccomp) {
    throw new ClawjailError('ERR_CLAWJAIL_PLAN', 'no seccomp compiler was supplied to buildPlan', { hint: 'this is a bug in the caller of buildPlan' });
  } else {
    const compiled = input.compileSeccomp(profile.seccomp, host.arch);
    seccomp = nativeSeccomp(compiled.program);
    layers.push({
      layer: 'seccomp',
      status: 'enforced',
      detail: `${profile.seccomp.mode === 'log' ? 'log mode (denials allowed and logged)' : 'denylist enforced'}; ${compiled.instructions} BPF instructions for ${host.arch}${compiled.detail ? `; ${compiled.detail}` : ''}`,
    });
  }

  // Resource limits
  // Clamping to the host's hard limit only ever tightens a limit, so it is reported, not warned.
  const { rlimits, notes } = buildRlimits(profile.limits.rlimits, host.rlimits);
  layers.push({
    layer: 'rlimits',
    status: rlimits.length ? 'enforced' : 'off',
    detail: (rlimits.length ? rlimits.map((r) => `${r.resource}=${r.soft === r.hard ? r.soft : `${r.soft}/${r.hard}`}`).join(' ') : 'none requested') + (notes.length ? ` (${notes.join('; ')})` : ''),
  });
  const cgroup = planCgroup(profile, host, input.cgroupDir, layers, warnings);

  refuseCredentialPassthrough(profile);
  const pathDirs = PATH_CANDIDATES.filter((d) => isVisibleInside(d, mountResult.readOnlyPaths, profile, input.pathFacts));
  const env = buildEnv({
    hostEnv: input.hostEnv,
    pathDirs,
    pass: profile.env.pass,
    set: profile.env.set,
    ...(services.egress ? { proxyPort: services.egress.port } : {}),
    serviceEnv: services.inference ? buildInferenceEnv(profile.inference) : {},
    sandboxName: input.name,
  });

  const native: NativePlan = {
    version: 1,
    supervisorPid: input.supervisorPid,
    hostname: profile.process.hostname,
    namespaces: ['user', 'mount', 'pid', 'net', 'ipc', 'uts', 'cgroup'],
    identity,
    mounts: mountResult.mounts,
    services: nativeServices,
    cgroupProcs: cgroup ? posix.join(cgroup.dir, 'cgroup.procs') : null,
    forwardSignals: [...FORWARDED_SIGNALS],
    workload: {
      argv: input.command,
      env,
      cwd: profile.process.cwd,
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
    binds: mountResult.binds,
    report: { sandbox: input.name, mode: 'namespaces', layers },
    warnings,
  };
}

export function buildIdentity(profile: Profile, host: HostFacts): NativeIdentity {
  if (host.isRoot) {
    // The dedicated uid must exist here (not so in a user-namespaced container): else a named refusal.
    const { uid, gid } = chooseIdentity(profile, host, 'namespaces');
    return { uid, gid, hostUid: uid, hostGid: gid, dropSupplementaryGroups: true };
  }
  return { uid: host.uid, gid: host.gid, hostUid: host.uid, hostGid: host.gid, dropSupplementaryGroups: false };
}

/**
 * What the kernel will let the sandbox user do with a bind source. A root caller's sandbox runs as
 * identity.hostUid with no supplementary groups, so owner/group/other bits decide; an unprivileged
 * caller's sandbox is the caller (same uid and groups), so its own access() check is the answer.
 */
export function sandboxCanWrite(fact: PathFacts[string] | undefined, identity: NativeIdentity, callerIsRoot: boolean): boolean {
  if (!fact?.realOwner) return true;
  if (!callerIsRoot) return fact.writableByCaller !== false;
  const { uid, gid, mode } = fact.realOwner;
  if (uid === identity.hostUid) return (mode & 0o200) !== 0;
  if (gid === identity.hostGid) return (mode & 0o020) !== 0;
  return (mode & 0o002) !== 0;
}

/** A PATH entry is kept when it lies under (or is a link to) a read-only system path. */
function isVisibleInside(dir: string, roPaths: string[], profile: Profile, facts: PathFacts): boolean {
  if (roPaths.some((p) => dir === p || dir.startsWith(p + '/'))) return true;
  const f = facts[dir];
  return profile.filesystem.system.includes(dir) && f?.kind === 'symlink';
}

export function planCgroup(profile: Profile, host: HostFacts, dir: string | undefined, layers: LayerReport[], warnings: string[]): LaunchPlan['cgroup'] {
  const c = profile.limits.cgroup;
  const settings: Record<string, string> = {};
  if (c.memoryMax !== undefined) settings['memory.max'] = String(parseSize(c.memoryMax));
  if (c.pidsMax !== undefined) settings['pids.max'] = String(c.pidsMax);
  if (c.cpuMax !== undefined) settings['cpu.max'] = `${Math.round(c.cpuMax * 100000)} 100000`;
  if (c.mode === 'off' || Object.keys(settings).length === 0) {
    layers.push({ layer: 'cgroup', status: 'off', detail: c.mode === 'off' ? 'limits.cgroup.mode is off' : 'no cgroup limits requested' });
    return null;
  }
  const needed = Object.keys(settings).map((k) => k.split('.')[0]!);
  const missing = needed.filter((k) => !host.cgroup.controllers.includes(k));
  const reason =
    !host.cgroup.dir || !dir
      ? (host.cgroup.reason ?? 'cgroup v2 is not available')
      : !host.cgroup.writable
        ? host.cgroup.reason
        : missing.length
          ? `the ${missing.join(', ')} controller${missing.length > 1 ? 's are' : ' is'} not available at ${host.cgroup.dir}${host.cgroup.reason ? ` (${host.cgroup.reason})` : ''}`
          : undefined;
  if (reason) {
    if (c.mode === 'required') {
      throw new ClawjailError('ERR_CLAWJAIL_LAYER_REQUIRED', `cgroup limits are required but unavailable: ${reason}`, {
        hint: 'run clawjail where a cgroup v2 subtree is delegated to it (root, or systemd-run --user -p Delegate=yes), or set limits.cgroup.mode: best-effort',
        step: 'cgroup',
      });
    }
    warnings.push(`cgroup limits unavailable: ${reason}`);
    layers.push({ layer: 'cgroup', status: 'unavailable', mode: c.mode, detail: reason, hint: 'rlimits still apply (nproc caps fork bombs)' });
    return null;
  }
  layers.push({ layer: 'cgroup', status: 'enforced', mode: c.mode, detail: Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(' ') });
  return { dir: dir!, settings, mode: c.mode };
}

/**
 * Allow rules for the host's 127.0.0.1: inside, that address is the sandbox's own loopback (and
 * NO_PROXY sends clients straight to it), so each named port is served there and forwarded to the
 * host. A port the sandbox itself uses cannot also be the host's.
 */
export function loopbackForwards(profile: Profile): number[] {
  const ports = new Set<number>();
  for (const rule of profile.network.allow) {
    if (rule.host !== LOOPBACK_HOST || rule.methods || rule.paths) continue;
    for (const port of rule.ports) ports.add(port);
  }
  const published = new Set(profile.publish.map((p) => p.port));
  for (const port of ports) {
    const clash = SERVICE_PORTS.includes(port) ? (port === EGRESS_PORT ? 'the egress proxy' : 'the inference router') : published.has(port) ? 'a port published into the sandbox' : undefined;
    if (!clash) continue;
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `network.allow: the host's ${LOOPBACK_HOST}:${port} cannot be reached by that address: port ${port} inside the sandbox is ${clash}`, {
      hint: `move the host service to another port, or reach it through the proxy by another loopback address (e.g. host: 127.0.0.2 with the service listening there)`,
    });
  }
  return [...ports].sort((a, b) => a - b);
}

/** Ports inside the sandbox that belong to its own services, whichever of them run. */
export const SERVICE_PORTS: readonly number[] = [EGRESS_PORT, INFERENCE_PORT];

/**
 * Publishing a service port would hand the proxy (the sandbox's egress) or the router (with the
 * operator's key injected) to every local user of the host.
 */
function refuseServicePortPublish(profile: Profile): void {
  for (const p of profile.publish) {
    if (!SERVICE_PORTS.includes(p.port)) continue;
    const what = p.port === EGRESS_PORT ? 'the egress proxy' : 'the inference router (which adds the route keys)';
    throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `refusing to publish port ${p.port}: it is ${what} of the sandbox, and publishing it would expose it to every local user of the host`, {
      hint: `publish the port of your own server inside instead (any port but ${SERVICE_PORTS.join(' and ')})`,
    });
  }
}

/** The point of the router is that keys stay outside: refuse a profile that would carry one in. */
export function refuseCredentialPassthrough(profile: Profile): void {
  for (const route of profile.inference.routes) {
    const cred = (route as { credential?: { env?: string } }).credential;
    const name = cred?.env;
    if (!name) continue;
    if (profile.env.pass.includes(name) || name in profile.env.set) {
      throw new ClawjailError('ERR_CLAWJAIL_PROFILE', `refusing to put ${name} into the sandbox's environment: it is the credential of inference route '${route.name}'`, {
        hint: `remove ${name} from env.pass/env.set (or --env); the workload reaches the model through the router, which adds the key itself`,
      });
    }
  }
}
