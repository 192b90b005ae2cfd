import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { ClawjailError } from './errors.js';
import { probeHost, type HostFacts } from './host/probe.js';
import { openAudit } from './launch/audit.js';
import { prepareCgroup } from './launch/cgroup.js';
import { openChannel, startHelper } from './launch/helper.js';
import { listenInPlace } from './launch/in-place.js';
import { dryRunInPlace, dryRunNamespaces, loadOptions, planInPlace, planNamespaces, sandboxName } from './launch/plans.js';
import { publishPorts } from './launch/publish.js';
import { prepareInPlaceDir, prepareSandboxDir } from './launch/sandbox-dir.js';
import { precompileSeccomp, seccompFor } from './launch/seccomp-cache.js';
import { refusalReason, untilStarted } from './launch/start.js';
import { openStdio, type StdioSpec } from './launch/stdio.js';
import { tearDown, type Cleanup } from './launch/teardown.js';
import { logger as rootLogger, type AuditEvent, type AuditSink } from './log.js';
import { addon } from './native.js';
import { chooseIdentity, chooseMode, isNamespacesRefusal, type ModeDecision, type NamespacesRefusal } from './plan/mode.js';
import type { LaunchPlan } from './plan/plan.js';
import { loadProfileCached } from './profile/cached.js';
import type { LoadedProfile } from './profile/load.js';
import type { Profile } from './profile/schema.js';
import { prepareServices, type RunningServices, type ServiceOptions } from './services/start.js';
import { Sandbox, type ExitStatus } from './sandbox.js';
import { createTurnQueue } from './turns.js';

/**
 * The launch sequence of DESIGN.md, one step after another; each step calls the module that owns it
 * (src/launch/ holds the supervisor's side of the steps):
 *   1. profile            loadProfileCached                                   launchInTurn
 *   2. host facts, mode   probeForMode, chooseMode; auto → in-place when the environment refuses
 *   3. plan               sandbox dir, in-place listeners, planNamespaces | planInPlace, cgroup
 *                                                                             launchIn
 *   4. services           prepareServices
 *   5. helper             channel, published ports, stdio, startHelper
 *   6–8. start            untilStarted (init's setup failures become ClawjailErrors)
 *   9. supervise          the Sandbox handle, audit events, exit
 *   10. teardown          tearDown, in reverse order
 */
export interface LaunchOptions extends ServiceOptions {
  /** Built-in profile name, profile file, or a raw profile object. Default: "default". */
  profile?: string | Record<string, unknown>;
  /** Raw profile fragments layered on top (CLI flags use this). */
  overrides?: unknown[];
  /** Names for override fields in errors (the CLI's flags): see LoadProfileOptions.fieldLabels. */
  fieldLabels?: Record<string, string>;
  /** The command to run inside, argv style. */
  command: string[];
  /** Sandbox name (default: profile name, else clawjail-<pid>-<n>). */
  name?: string;
  /** stdio of the workload: inherit (default), pipe, ignore, or per stream (a file descriptor number also works). */
  stdio?: StdioSpec | [StdioSpec, StdioSpec, StdioSpec];
  /** Host environment the passthrough variables are read from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Directory relative profile paths are resolved against (default process.cwd()). */
  cwd?: string;
  logger?: Logger;
  /** Also write audit events to this file as JSON lines. */
  auditLog?: string;
}

/** Steps 1–3 only: what `launch` would do, with no side effects (`--dry-run`). */
export async function planLaunch(options: LaunchOptions & { host?: HostFacts; refused?: NamespacesRefusal }): Promise<{ plan: LaunchPlan; loaded: LoadedProfile; host: HostFacts }> {
  const loaded = await loadProfileCached(loadOptions(options));
  const host = options.host ?? probeForMode(loaded.profile);
  const decision = chooseMode(loaded.profile, host, options.refused ?? namespacesRefused);
  const plan = decision.mode === 'in-place' ? await dryRunInPlace(options, loaded, host, decision) : await dryRunNamespaces(options, loaded, host);
  return { plan, loaded, host };
}

/**
 * Set once a namespaces launch in this process was refused by the environment (a container):
 * later `auto` launches go in-place directly instead of trying again.
 */
let namespacesRefused: NamespacesRefusal | undefined;

/**
 * Runs a command in a new sandbox. Resolves once the workload has started (its execve
 * succeeded and the sandbox's services are listening); rejects with a ClawjailError when the
 * sandbox cannot be built as asked, after everything it started is gone.
 */
export async function launch(options: LaunchOptions): Promise<Sandbox> {
  const endTurn = await takeTurn();
  try {
    return await launchInTurn(options, endTurn);
  } finally {
    endTurn();
  }
}

/**
 * Launches started together take turns for their CPU-bound first half (profile, plan, services,
 * spawn). Without this, N launches started at once ran all N first halves back to back before the
 * loop could read any sandbox's "ready", so no tenant was ready until nearly all were.
 */
const turns = createTurnQueue();
const takeTurn = () => turns.take();

/** Sandboxes this process launched that are still running. */
const live = new Set<Sandbox>();

/** Every sandbox launched by this process and still running. */
export function runningSandboxes(): Sandbox[] {
  return [...live];
}

/** Stops every running sandbox of this process (SIGTERM, SIGKILL after graceMs); resolves when all are gone. */
export async function closeAll(graceMs = 5000): Promise<ExitStatus[]> {
  return Promise.all([...live].map((sb) => sb.close(graceMs)));
}

async function launchInTurn(options: LaunchOptions, endTurn: () => void): Promise<Sandbox> {
  const log = options.logger ?? rootLogger;
  // 1. profile
  const loaded = await loadProfileCached(loadOptions(options));
  // 2. host facts, and the mode they allow
  const host = probeForMode(loaded.profile);
  const decision = chooseMode(loaded.profile, host, namespacesRefused);
  try {
    return await launchIn(decision, loaded, host, options, log, endTurn);
  } catch (e) {
    // auto: a container that refuses what namespaces need (clone, id maps, sethostname, a fresh
    // /proc) gets the in-place sandbox instead, with a warning; everything the first try made is gone.
    if (loaded.profile.mode !== 'auto' || decision.mode !== 'namespaces' || !(e instanceof ClawjailError)) throw e;
    if (e.code === 'ERR_CLAWJAIL_IDENTITY') {
      // The namespaces sandbox user does not exist here; whether in-place applies depends on
      // whether namespaces work at all, which only a real clone tells.
      const probed = probeHost({ checkUserns: true });
      if (probed.userns.available !== false) throw e;
      namespacesRefused = { step: 'namespaces.clone', errno: probed.userns.errno ?? 0, reason: probed.userns.reason ?? 'user namespaces are unavailable' };
    } else if (isNamespacesRefusal(e)) {
      namespacesRefused = { step: e.step!, errno: e.errno!, reason: refusalReason(e.step!, e.errno!, host) };
    } else {
      throw e;
    }
    return launchIn(chooseMode(loaded.profile, host, namespacesRefused), loaded, host, options, log, endTurn);
  }
}

/**
 * Host facts for choosing the mode. Where a container is likely, auto tries a user namespace up
 * front (a throwaway clone: ~0.4 ms when allowed, nothing when refused) rather than learning it
 * from a failed sandbox.
 */
function probeForMode(profile: Profile): HostFacts {
  const host = probeHost();
  if (profile.mode !== 'auto' || host.userns.available !== 'unknown' || namespacesRefused) return host;
  return host.container.inContainer || host.seccomp.alreadyFiltered || host.idMap ? probeHost({ checkUserns: true }) : host;
}

/**
 * Steps 3–10 in the chosen mode. Everything a step makes is undone at teardown: when the sandbox
 * exits, or at once when a later step fails.
 */
async function launchIn(decision: ModeDecision, loaded: LoadedProfile, host: HostFacts, options: LaunchOptions, log: Logger, endTurn: () => void): Promise<Sandbox> {
  const profile = loaded.profile;
  await precompileSeccomp(seccompFor(profile, decision.mode), host);
  // 3. plan (after preparing /sandbox's host directory and, in-place, the service ports: the
  // only things made before it)
  const identity = chooseIdentity(profile, host, decision.mode);
  const name = sandboxName(options, profile);
  const sandboxDir = decision.mode === 'in-place' ? prepareInPlaceDir(profile, identity) : prepareSandboxDir(profile, host, name, log);
  const cleanups: Cleanup[] = [];
  if (sandboxDir.ephemeral && !profile.filesystem.keepSandboxDir) cleanups.push(() => rmSync(sandboxDir.host, { recursive: true, force: true }));
  let services: RunningServices | undefined;
  let audit: AuditSink | undefined;
  const teardown = () => tearDown(log, services, cleanups, audit);
  try {
    // In place, the services' loopback ports are chosen now: the plan names them.
    const listeners = decision.mode === 'in-place' ? listenInPlace(profile, cleanups) : undefined;
    const at = { options, loaded, host, name, sandboxDir, supervisorPid: process.pid };
    const built = decision.mode === 'in-place' ? planInPlace(at, decision, identity, listeners!.ports) : planNamespaces(at);
    // The cgroup is the one part of the plan made before the sandbox; when it cannot be, the plan
    // says what the launch becomes (degradeCgroup): refused, or without it.
    const plan = prepareCgroup(built, cleanups);
    for (const w of plan.warnings) log.warn({ sandbox: name }, w);
    const { sink, attach: attachAudit } = openAudit(plan, log);
    audit = sink;
    if (host.isRoot) warnSharedHostUid(plan, name, log);
    log.info({ sandbox: name, report: plan.report.layers }, 'enforcement report');
    sink.emit({ kind: 'launch', sandbox: name, command: options.command, layers: plan.report.layers.map((l) => `${l.layer}:${l.status}`) });
    // 4. services (they read the plan; they serve init's sockets once it hands them over)
    services = await prepareServices(plan, { ...options, audit: sink, logger: log });
    // In-place, the supervisor's own loopback sockets are the services' (there is no init to make them).
    if (listeners?.names.length) await services.serve(listeners.names, listeners.take());
    // 5. the helper: clean environment, plan on fd 3, channel on fd 4
    const { channel, theirs } = openChannel(cleanups);
    // Published host ports listen before the workload exists: a client that connects once the
    // workload says it is serving never finds the host side missing. A connection that comes
    // earlier waits on the channel until init answers it.
    const published = await publishPorts(plan, channel, cleanups).catch((e: unknown) => {
      addon().closeFd(theirs);
      throw e;
    });
    const stdio = openStdio(options.stdio);
    cleanups.push(() => stdio.closeParentEnds());
    // Without a terminal to share, the helper gets its own session: keyboard signals then reach
    // only the supervisor, which forwards them once.
    const helper = startHelper(plan, { stdio, channelFd: theirs, setsid: !profile.process.tty, endTurn });
    // 6–8. wait for the sandbox to come up
    await untilStarted(channel, helper, services, options.command, plan);
    // 9. supervise
    const sandbox = new Sandbox({ plan, pid: helper.pid, kill: helper.kill, stdio: stdio.parentStreams, channel, exited: helper.exited, published });
    attachAudit(sandbox);
    live.add(sandbox);
    void helper.exited.then(() => live.delete(sandbox));
    helper.exited.then(async (st) => {
      if (st.oomKilled) log.warn({ sandbox: name }, `the kernel's OOM killer killed a process in the sandbox (memory.max=${plan.cgroup?.settings['memory.max']})`);
      sink.emit({ kind: 'exit', sandbox: name, code: st.code, signal: st.signal, ...(st.oomKilled ? { oomKilled: true } : {}) });
      // 10. teardown, in reverse order
      await teardown();
      sandbox.emit('exit', st);
    });
    return sandbox;
  } catch (e) {
    await teardown();
    throw e;
  }
}

/** A root supervisor's sandboxes should not share a host uid (one tenant could reach another's files): say so. */
function warnSharedHostUid(plan: LaunchPlan, name: string, log: Logger): void {
  const sharing = [...live].find((sb) => sb.plan.native.identity.hostUid === plan.native.identity.hostUid);
  if (sharing) log.warn({ sandbox: name }, `sandbox ${name} runs as host uid ${plan.native.identity.hostUid}, like the running sandbox ${sharing.name}: give each tenant its own identity.uid (createOrchestrator allocates them)`);
}

export type { AuditEvent, AuditSink, StdioSpec };
export { refusalReason };
export { EPHEMERAL_SANDBOX_PREFIX } from './launch/sandbox-dir.js';
