import { join, posix } from 'node:path';
import { errnoName, errnoText } from '../errno.js';
import { ClawjailError } from '../errors.js';
import { inspectHostPath } from '../host/path-facts.js';
import { explainUsernsFailure, probeHost, type HostFacts } from '../host/probe.js';
import type { LaunchPlan } from '../plan/plan.js';
import { MALFORMED_RECORD_STEP, type InitChannel, type SetupFailure } from '../services/channel.js';
import type { RunningServices } from '../services/start.js';
import type { ExitStatus } from '../sandbox.js';
import type { Helper } from './helper.js';

type StartResult = { ok: true } | { ok: false; failure: SetupFailure | { step: 'exit'; code: number | null; signal: string | null } };

/**
 * Steps 6–8: resolves once the workload runs. Otherwise waits until the helper is gone, then throws
 * what stopped the start.
 */
export async function untilStarted(channel: InitChannel, helper: Helper, services: RunningServices, command: string[], plan: LaunchPlan): Promise<void> {
  const started = await waitForStart(channel, helper.kill, helper.exited, services);
  if (!started.ok) {
    await helper.exited;
    throw failureToError(started.failure, command, plan);
  }
}

/**
 * Steps 6–8 seen from the supervisor: init hands over the service sockets, then "ready" (the
 * workload's execve succeeded) — or a setup failure, or the helper's death, ends the wait.
 */
function waitForStart(channel: InitChannel, kill: (s: NodeJS.Signals) => boolean, exited: Promise<ExitStatus>, services: RunningServices): Promise<StartResult> {
  return new Promise((resolve) => {
    let failure: SetupFailure | undefined;
    let serving: Promise<void> = Promise.resolve();
    channel.on('services', (names: string[], fds: number[]) => {
      serving = services.serve(names, fds);
    });
    channel.on('failure', (f: SetupFailure) => {
      failure ??= f;
      // A helper that does not speak the protocol is not trusted to have built the sandbox.
      if (f.step === MALFORMED_RECORD_STEP && !ready) kill('SIGKILL');
    });
    let ready = false;
    channel.once('ready', () => {
      ready = true;
      serving.then(
        () => resolve({ ok: true }),
        (e: unknown) => {
          kill('SIGKILL');
          resolve({ ok: false, failure: { step: 'services.listen', errno: (e as NodeJS.ErrnoException).errno ? Math.abs((e as NodeJS.ErrnoException).errno!) : 0, path: '', detail: String(e) } });
        },
      );
    });
    exited.then((st) => {
      // After "ready" the workload ran: a quick exit is its own business, and the ready handler
      // settles the outcome. Before it: a reported failure, or an unexpected death.
      if (ready) return;
      resolve({ ok: false, failure: failure ?? { step: 'exit', code: st.code, signal: st.signal } });
    });
  });
}

const STEP_HINTS: [RegExp, (f: SetupFailure) => string][] = [
  [/^namespaces\.clone$/, (f) => explainUsernsFailure(f.errno, probeHost().container.inContainer, probeHost().seccomp.alreadyFiltered) + '; or run with --mode in-place'],
  [/^uts\.sethostname$/, (f) => (f.errno === 1 ? 'the container\'s seccomp profile lets a user namespace be created but refuses sethostname in it (podman\'s default profile does); run with --mode in-place (or mode: auto), or start the container with a seccomp profile that allows sethostname' : 'see `clawjail doctor`')],
  [/^identity\./, (f) => `the workload could not become uid/gid ${f.path}: it must exist in this user namespace (see /proc/self/uid_map); set identity.uid/gid to a mapped id`],
  [/^inplace\./, () => 'the in-place supervisor could not start the workload; see the errno'],
  [/^caps\.bounding$/, () => 'dropping the capability bounding set needs CAP_SETPCAP, which this container withheld from root; add it (docker: --cap-add SETPCAP)'],
  [/^userns\./, () => 'the uid/gid map of the new user namespace was refused (a container may allow mapping only its own ids); run with --mode in-place (or mode: auto), and see `clawjail doctor`'],
  [/^mount\.bind_source$/, (f) => (f.errno === 13 ? `the caller cannot read ${f.path}; bind something it can read` : f.errno === 40 ? `${f.path} became a symlink after clawjail resolved it; refusing to follow it` : `check that ${f.path} exists`)],
  [/^mount\.proc$/, () => 'the kernel refuses a fresh /proc when the visible /proc is partly masked (containers do this); run with --mode in-place (or mode: auto), or with an unmasked /proc (docker: --security-opt systempaths=unconfined)'],
  [/^mount\./, () => 'the mount namespace could not be built as planned; run with --log-level debug and report the step'],
  [/^landlock\./, () => 'landlock refused the ruleset; set landlock.mode: off to run without it, or report the step'],
  [/^seccomp\./, () => 'the kernel refused the seccomp filter; set seccomp.mode: off to run without it, or report the step'],
  [/^net\.service_bind$/, () => 'a service port is already in use inside the sandbox'],
  [/^cgroup\./, () => 'the cgroup could not be joined; set limits.cgroup.mode: off'],
  [/^plan\./, () => 'clawjail-init rejected the plan: the addon and the TypeScript build are out of step; reinstall clawjail'],
  [/^monitor\.parent$/, () => 'the supervisor exited while the sandbox was starting'],
  [/^services\./, () => 'a sandbox service could not start; see the log'],
  [/^spawn$/, () => 'clawjail-init could not be started; run `npm run build:native` in the clawjail package'],
];

/** A failed start as the error launch() rejects with: code, errno, step, path and a hint. */
function failureToError(f: SetupFailure | { step: 'exit'; code: number | null; signal: string | null }, command: string[], plan: LaunchPlan): ClawjailError {
  if (f.step === 'exit') {
    const how = 'code' in f && f.signal ? `was killed by ${f.signal}` : `exited with code ${'code' in f ? f.code : '?'}`;
    return new ClawjailError('ERR_CLAWJAIL_SETUP', `the sandbox ${how} before the command started`, { hint: 'run with --log-level debug; if it was killed from outside, nothing is wrong with clawjail', step: 'exit' });
  }
  const sf = f as SetupFailure;
  if (sf.step === 'exec') {
    const cmd = command[0]!;
    if (sf.errno === 2) {
      const onHost = findOnHost(cmd);
      return new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `command not found inside the sandbox: ${cmd}`, {
        exitCode: 127,
        errno: sf.errno,
        step: 'exec',
        path: cmd,
        hint: onHost
          ? `${cmd} exists on the host at ${onHost} but that path is not mounted in the sandbox; add --ro ${posix.dirname(onHost)}`
          : `it exists neither inside nor on the host's PATH; check the name (inside PATH=${pathOf(plan)})`,
      });
    }
    return new ClawjailError('ERR_CLAWJAIL_NOT_EXECUTABLE', `cannot execute ${cmd} inside the sandbox: ${errnoText(sf.errno)}`, {
      exitCode: 126,
      errno: sf.errno,
      step: 'exec',
      path: cmd,
      hint: 'check that it is an executable file for this machine, and that landlock allows executing it (only read-only system paths, /sandbox and /tmp are executable)',
    });
  }
  const hint = STEP_HINTS.find(([re]) => re.test(sf.step))?.[1](sf) ?? 'run with --log-level debug';
  const where = sf.path ? ` (${sf.path})` : '';
  const detail = sf.detail ? `: ${sf.detail}` : '';
  return new ClawjailError(sf.errno ? errnoName(sf.errno) : 'ERR_CLAWJAIL_SETUP', `sandbox setup failed at ${sf.step}${where}: ${sf.errno ? errnoText(sf.errno) : 'failed'}${detail}`, {
    errno: sf.errno,
    step: sf.step,
    syscall: sf.step.split('.').pop()!,
    path: sf.path,
    hint,
  });
}

function pathOf(plan: LaunchPlan): string {
  return plan.native.workload.env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '';
}

function findOnHost(cmd: string): string | undefined {
  if (cmd.includes('/')) return inspectHostPath(cmd).kind !== 'missing' ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = join(dir, cmd);
    if (inspectHostPath(p).kind !== 'missing') return p;
  }
  return undefined;
}

/** Why the environment refused a namespaces step, in words, for the warning and the report. */
export function refusalReason(step: string, errno: number, host: HostFacts): string {
  if (step === 'namespaces.clone') return explainUsernsFailure(errno, host.container.inContainer, host.seccomp.alreadyFiltered);
  const hint = STEP_HINTS.find(([re]) => re.test(step))?.[1]({ step, errno, path: '', detail: '' });
  return `${errnoName(errno)} at ${step}${hint ? `: ${hint}` : ''}`;
}
