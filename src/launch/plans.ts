import { readlinkSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { ClawjailError } from '../errors.js';
import { expandHome, inspectHostPaths } from '../host/path-facts.js';
import type { HostFacts } from '../host/probe.js';
import { packageRoot } from '../paths.js';
import { EGRESS_PORT, INFERENCE_PORT } from '../policy/addresses.js';
import { PATH_CANDIDATES } from '../plan/env.js';
import { buildInPlacePlan, IN_PLACE_PATHS, inPlaceSeccomp, type InPlacePorts } from '../plan/in-place.js';
import { chooseIdentity, type ModeDecision, type WorkloadIdentity } from '../plan/mode.js';
import { GENERATED_ETC, type ProtectedPath } from '../plan/mounts.js';
import { buildPlan, type LaunchPlan } from '../plan/plan.js';
import type { LoadedProfile, LoadProfileOptions } from '../profile/load.js';
import type { Profile } from '../profile/schema.js';
import { inPlaceDirChoice, type SandboxDir } from './sandbox-dir.js';
import { compileSeccompCached, precompileSeccomp } from './seccomp-cache.js';

/** What planning reads of LaunchOptions. */
export interface PlanOptions {
  command: string[];
  name?: string;
  env?: Record<string, string | undefined>;
  auditLog?: string;
}

/** Where a plan is made: the options, the profile, the host, the sandbox's name and directory, the supervisor's pid (0 in a dry run). */
export interface PlanContext {
  options: PlanOptions;
  loaded: LoadedProfile;
  host: HostFacts;
  name: string;
  sandboxDir: SandboxDir;
  supervisorPid: number;
}

let counter = 0;

/** Step 1's input: the profile options of a launch. */
export function loadOptions(options: LoadProfileOptions) {
  return {
    ...(options.profile !== undefined ? { profile: options.profile } : {}),
    ...(options.overrides ? { overrides: options.overrides } : {}),
    ...(options.fieldLabels ? { fieldLabels: options.fieldLabels } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  };
}

export function sandboxName(options: PlanOptions, profile: Profile): string {
  return options.name ?? profile.name ?? `clawjail-${process.pid}-${++counter}`;
}

/**
 * Host paths a read-write bind must not contain: the sandbox's own directory, the profile files
 * (its policy), the audit log, and clawjail itself (the helper a root supervisor executes).
 */
function protectedPaths(loaded: LoadedProfile, options: PlanOptions, sandboxDir: SandboxDir): ProtectedPath[] {
  const log = options.auditLog ?? loaded.profile.network.auditLog;
  const paths: ProtectedPath[] = [
    { path: packageRoot, what: 'clawjail installation' },
    ...loaded.sources.map((path) => ({ path, what: 'profile' as const })),
    ...(log ? [{ path: expandHome(log), what: 'audit log' as const }] : []),
    ...(sandboxDir.host.startsWith('/') ? [{ path: sandboxDir.host, what: 'sandbox directory' as const }] : []),
  ];
  return paths.map((p) => {
    try {
      return { ...p, path: realpathSync(p.path) };
    } catch {
      return p;
    }
  });
}

/** The host path of the terminal on stdin (a pts or tty device), for --tty. */
function terminalPath(): { terminal?: string } {
  try {
    const p = readlinkSync('/proc/self/fd/0');
    return /^\/dev\/(pts\/\d+|tty[A-Za-z0-9]*)$/.test(p) ? { terminal: p } : {};
  } catch {
    return {};
  }
}

/** Step 3 for namespaces mode: the host's paths, mounted into a new root. */
export function planNamespaces(at: PlanContext): LaunchPlan {
  const { options, loaded, sandboxDir } = at;
  return buildPlan({
    ...planInputs(at, GENERATED_ETC),
    protectedPaths: protectedPaths(loaded, options, sandboxDir),
    ...(loaded.profile.process.tty ? terminalPath() : {}),
  });
}

/** Step 3 for in-place mode: the container's own paths, the supervisor's loopback ports. */
export function planInPlace(at: PlanContext, decision: ModeDecision, identity: WorkloadIdentity, ports: InPlacePorts): LaunchPlan {
  return buildInPlacePlan({ ...planInputs(at, IN_PLACE_PATHS), decision, identity, ports });
}

/**
 * What both planners take: the profile, the facts of every host path it names (with `extraPaths`,
 * the mode's own), the command and environment, and the service inputs. Refuses an empty command.
 */
function planInputs({ options, loaded, host, name, sandboxDir, supervisorPid }: PlanContext, extraPaths: readonly string[]) {
  const profile = loaded.profile;
  if (options.command.length === 0 || !options.command[0]) {
    throw new ClawjailError('ERR_CLAWJAIL_USAGE', 'no command to run', { hint: 'give the command after --, e.g. clawjail run -- sh -c "echo hi"' });
  }
  const expand = (p: string) => expandHome(p);
  const paths = new Set<string>([...profile.filesystem.system, ...extraPaths, ...PATH_CANDIDATES]);
  for (const b of [...profile.filesystem.ro, ...profile.filesystem.rw]) paths.add(expand(b.src));
  return {
    profile,
    host,
    pathFacts: inspectHostPaths(paths),
    command: options.command,
    name,
    supervisorPid,
    sandboxDir,
    hostEnv: options.env ?? process.env,
    expand,
    ...(host.cgroup.dir ? { cgroupDir: posix.join(host.cgroup.dir, `clawjail-${name}`) } : {}),
    compileSeccomp: compileSeccompCached,
    ...serviceInputs(options, loaded),
  };
}

/** What the plan's service sections take besides the profile: the audit log option, the profile file. */
function serviceInputs(options: PlanOptions, loaded: LoadedProfile): { auditLog?: string; profileFile?: string } {
  return { ...(options.auditLog !== undefined ? { auditLog: options.auditLog } : {}), ...(loaded.file !== undefined ? { profileFile: loaded.file } : {}) };
}

/** planLaunch in namespaces mode: nothing is created; a temporary /sandbox is only named. */
export async function dryRunNamespaces(options: PlanOptions, loaded: LoadedProfile, host: HostFacts): Promise<LaunchPlan> {
  await precompileSeccomp(loaded.profile.seccomp, host);
  const name = sandboxName(options, loaded.profile);
  const sandboxDir = loaded.profile.filesystem.sandboxDir
    ? { host: expandHome(loaded.profile.filesystem.sandboxDir), ephemeral: false }
    : { host: '<temporary directory>', ephemeral: true };
  return planNamespaces({ options, loaded, host, name, sandboxDir, supervisorPid: 0 });
}

/** planLaunch in in-place mode: nothing is created; the ports are the namespaces-mode numbers. */
export async function dryRunInPlace(options: PlanOptions, loaded: LoadedProfile, host: HostFacts, decision: ModeDecision): Promise<LaunchPlan> {
  const profile = loaded.profile;
  await precompileSeccomp(inPlaceSeccomp(profile.seccomp), host);
  const identity = chooseIdentity(profile, host, 'in-place');
  const given = inPlaceDirChoice(profile);
  const sandboxDir = given ? { host: expandHome(given), ephemeral: false } : { host: '<temporary directory>', ephemeral: true };
  const ports: InPlacePorts = {
    ...(profile.network.mode === 'proxy' ? { egress: EGRESS_PORT } : {}),
    ...(profile.inference.routes.length > 0 ? { inference: INFERENCE_PORT } : {}),
  };
  return planInPlace({ options, loaded, host, name: sandboxName(options, profile), sandboxDir, supervisorPid: 0 }, decision, identity, ports);
}
