import { ClawjailError, isClawjailError } from '../errors.js';
import { say } from '../log.js';
import { FORWARDED_SIGNALS } from '../policy/signals.js';
import { checkStatusTarget, writeJsonFile } from './status.js';
import { launch, planLaunch, type LaunchOptions } from '../launch.js';
import { applyLogLevelFlag, parse, parseBindFlag, parseEnvFlags, parsePublishFlag, splitAtCommand, usageError } from './args.js';

export const RUN_OPTIONS = {
  profile: { type: 'string', short: 'p' },
  'sandbox-dir': { type: 'string' },
  'chown-sandbox-dir': { type: 'boolean' },
  ro: { type: 'string', multiple: true },
  rw: { type: 'string', multiple: true },
  env: { type: 'string', short: 'e', multiple: true },
  name: { type: 'string' },
  publish: { type: 'string', multiple: true },
  tty: { type: 'boolean', short: 't' },
  'dry-run': { type: 'boolean' },
  'status-json': { type: 'string' },
  'log-level': { type: 'string' },
  'allow-host': { type: 'string', multiple: true },
  'no-network': { type: 'boolean' },
  approvals: { type: 'boolean' },
  'audit-log': { type: 'string' },
  'audit-bodies': { type: 'boolean' },
  route: { type: 'string', multiple: true },
  'route-credential-env': { type: 'string', multiple: true },
  'tmp-size': { type: 'string' },
  landlock: { type: 'string' },
  seccomp: { type: 'string' },
  mode: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const RUN_HELP = `Usage: clawjail run [options] [--] COMMAND [ARGS...]

Options end at the command: what follows it is the command's own (clawjail run ls -la).

  -p, --profile NAME|FILE     built-in profile (default, strict, openclaw) or a YAML/JSON file
      --sandbox-dir DIR       host directory mounted at /sandbox (default: a temporary one, removed at exit)
      --chown-sandbox-dir     root: give an existing --sandbox-dir of another owner to the sandbox uid (recursively)
      --ro SRC[:DEST]         bind a host path read-only (repeatable)
      --rw SRC[:DEST]         bind a host path read-write (repeatable; never /)
  -e, --env K=V | K           set a variable, or copy K from the host (repeatable)
      --name NAME             sandbox name (control socket, logs)
      --publish HOSTPORT:PORT forward host 127.0.0.1:HOSTPORT to port PORT inside (repeatable)
  -t, --tty                   keep the terminal (interactive programs)
      --allow-host HOST[:PORT] allow egress to HOST (port 443 unless given; *.example.com for subdomains)
      --no-network            no egress at all (no proxy)
      --approvals             hold unknown destinations for \`clawjail approve\` instead of refusing
      --audit-log FILE        append audit events (JSON lines)
      --audit-bodies          include prompt and completion text in inference audit events (off: never)
      --route NAME=URL        an inference route to an OpenAI-compatible upstream
      --route-credential-env NAME=VAR   the route's API key comes from host variable VAR
      --tmp-size SIZE         /tmp size limit (e.g. 512m)
      --landlock MODE         required | best-effort | off (default from the profile: best-effort)
      --seccomp MODE          enforce | required | log | off (log: denied calls run and are logged by the kernel)
      --mode MODE             auto | namespaces | in-place (default auto: namespaces, or in-place with a
                              warning where a container forbids them; in place, --sandbox-dir is used
                              where it is, as HOME and cwd)
      --dry-run               print the launch plan as JSON and run nothing
      --status-json FILE      write the enforcement report and exit status to FILE (/dev/fd/N: to descriptor N)
      --log-level LEVEL       fatal|error|warn|info|debug|trace|silent (default warn)
`;

/** Which flag sets which profile field: errors in a flag's value name the flag. */
export const RUN_FIELD_LABELS: Record<string, string> = {
  'filesystem.sandboxDir': '--sandbox-dir',
  'filesystem.chownSandboxDir': '--chown-sandbox-dir',
  'filesystem.ro': '--ro',
  'filesystem.rw': '--rw',
  'filesystem.tmpSize': '--tmp-size',
  env: '--env',
  name: '--name',
  publish: '--publish',
  'process.tty': '--tty',
  'landlock.mode': '--landlock',
  'seccomp.mode': '--seccomp',
  'network.mode': '--no-network',
  'network.allow': '--allow-host',
  'network.approvals': '--approvals',
  'inference.routes': '--route',
  'inference.auditBodies': '--audit-bodies',
};

type RunValues = ReturnType<typeof parse<typeof RUN_OPTIONS>>['values'];

/** CLI flags as a raw profile fragment, layered over the profile. */
export async function overridesFromFlags(v: RunValues): Promise<Record<string, unknown>> {
  const o: Record<string, Record<string, unknown> | unknown> = {};
  const fs: Record<string, unknown> = {};
  if (v['sandbox-dir']) fs.sandboxDir = v['sandbox-dir'];
  if (v['chown-sandbox-dir']) fs.chownSandboxDir = true;
  if (v.ro?.length) fs.ro = v.ro.map((x) => parseBindFlag('--ro', x));
  if (v.rw?.length) fs.rw = v.rw.map((x) => parseBindFlag('--rw', x));
  if (v['tmp-size']) fs.tmpSize = v['tmp-size'];
  if (Object.keys(fs).length) o.filesystem = fs;
  if (v.env?.length) o.env = parseEnvFlags(v.env);
  if (v.name) o.name = v.name;
  if (v.publish?.length) o.publish = v.publish.map(parsePublishFlag);
  if (v.tty) o.process = { tty: true };
  if (v.landlock) {
    if (!['required', 'best-effort', 'off'].includes(v.landlock)) throw usageError(`--landlock ${v.landlock}: expected required, best-effort or off`, 'run');
    o.landlock = { mode: v.landlock };
  }
  if (v.seccomp) {
    if (!['enforce', 'required', 'log', 'off'].includes(v.seccomp)) throw usageError(`--seccomp ${v.seccomp}: expected enforce, required, log or off`, 'run');
    o.seccomp = { mode: v.seccomp };
  }
  if (v.mode) {
    if (!['auto', 'namespaces', 'in-place'].includes(v.mode)) throw usageError(`--mode ${v.mode}: expected auto, namespaces or in-place`, 'run');
    o.mode = v.mode;
  }
  const net: Record<string, unknown> = {};
  if (v['no-network']) {
    if (v['allow-host']?.length) throw usageError('--no-network and --allow-host contradict each other', 'run');
    net.mode = 'none';
  }
  if (v['allow-host']?.length) {
    // Loaded only when used: it validates with the profile schema, which a plain run does not need.
    const { parseAllowHostFlag } = await import('../profile/network.js');
    net.allow = v['allow-host'].map(parseAllowHostFlag);
  }
  if (v.approvals) net.approvals = { enabled: true };
  if (Object.keys(net).length) o.network = net;
  if (v.route?.length || v['route-credential-env']?.length || v['audit-bodies']) {
    const inference: Record<string, unknown> = {};
    if (v.route?.length || v['route-credential-env']?.length) {
      const { routeOverridesFromCli } = await import('../services/inference/cli.js');
      inference.routes = routeOverridesFromCli(v.route ?? [], v['route-credential-env'] ?? []);
    }
    if (v['audit-bodies']) inference.auditBodies = true;
    o.inference = inference;
  }
  return o;
}

export async function runCommand(argv: string[]): Promise<number> {
  const { own, command } = splitAtCommand(argv, RUN_OPTIONS);
  const { values: v } = parse('run', own, RUN_OPTIONS);
  if (v.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  await applyLogLevelFlag(v['log-level'], 'run');
  if (command.length === 0) throw usageError('no command given', 'run');
  checkStatusTarget(v['status-json'], 'run');
  const options = {
    ...(v.profile ? { profile: v.profile } : {}),
    overrides: [await overridesFromFlags(v)],
    fieldLabels: RUN_FIELD_LABELS,
    command,
    ...(v['audit-log'] ? { auditLog: v['audit-log'] } : {}),
  };
  if (v['dry-run']) {
    const { plan } = await planLaunch(options);
    process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
    return 0;
  }
  return superviseLaunch(options, v['status-json']);
}

/**
 * Launches, forwards signals, writes the status file, and returns the exit status to use: the
 * workload's code, 128+N for signal N. Shared by `run` and `openclaw`.
 */
export async function superviseLaunch(options: LaunchOptions, statusFile: string | undefined, onStarted?: (sandbox: import('../sandbox.js').Sandbox) => void): Promise<number> {
  // Handlers go in before the launch: the workload may run (and be signalled) before launch()
  // returns; a signal that arrives meanwhile is delivered as soon as the sandbox exists.
  let sandbox: import('../sandbox.js').Sandbox | undefined;
  const early: NodeJS.Signals[] = [];
  // The same list the plan gives the helper, so every hop passes on what the one before caught.
  const handlers = FORWARDED_SIGNALS.map((sig) => {
    const h = () => (sandbox ? sandbox.kill(sig) : early.push(sig));
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    sandbox = await launch(options);
  } catch (e) {
    for (const [sig, h] of handlers) process.off(sig, h);
    if (statusFile) {
      const err = isClawjailError(e) ? e : new ClawjailError('ERR_CLAWJAIL_SETUP', String((e as Error)?.message ?? e), { cause: e });
      writeJsonFile(statusFile, {
        error: { code: err.code, message: err.message, step: err.step, errno: err.errno, path: err.path },
        exit: { code: null, signal: null, status: err.exitCode },
      });
    }
    throw e;
  }
  const started = sandbox;
  for (const sig of early) started.kill(sig);
  onStarted?.(started);
  const status = await new Promise<import('../sandbox.js').ExitStatus>((resolve) => started.once('exit', resolve));
  for (const [sig, h] of handlers) process.off(sig, h);
  if (statusFile) writeJsonFile(statusFile, { sandbox: started.name, sandboxDir: started.sandboxDir, report: started.report, warnings: started.plan.warnings, exit: status });
  if (status.oomKilled) say('error', `the sandbox ran out of memory: the kernel's OOM killer ended a process (limits.cgroup.memoryMax)`, { sandbox: started.name, oomKilled: true });
  // 128+N for a workload killed by signal N, as a shell reports it.
  return status.status;
}
