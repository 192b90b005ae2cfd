import type { ModeDecision, NamespacesRefusal } from '../plan/mode.js';
import { parse } from './args.js';

const DOCTOR_HELP = `Usage: clawjail doctor [--json] [--profile P]

Probes this host, tries what \`clawjail run\` would do (a throwaway sandbox of \`true\` in namespaces
mode, and in-place mode where that is what the profile would get), and prints the mode a sandbox
would use and why, then each layer with whether it is enforced here. Exits non-zero when the
profile cannot launch here.
`;

interface Trial {
  ok: boolean;
  code?: string;
  step?: string;
  errno?: number;
  message?: string;
}

/**
 * A real sandbox of `true` with the default profile, no network: the same clone, id maps,
 * sethostname, mounts and /proc (or, in place, landlock and seccomp) that `run` performs.
 */
async function trial(mode: 'namespaces' | 'in-place'): Promise<Trial> {
  const { launch } = await import('../launch.js');
  const { logger } = await import('../log.js');
  try {
    const sb = await launch({
      command: ['true'],
      profile: 'default',
      overrides: [{ mode, network: { mode: 'none' }, inPlace: { rootWorkload: true } }],
      stdio: 'ignore',
      name: `clawjail-doctor-${process.pid}-${mode}`,
      logger: logger.child({}, { level: 'silent' }),
    });
    const st = await sb.exited;
    return st.status === 0 ? { ok: true } : { ok: false, message: `the trial sandbox exited with ${st.status}` };
  } catch (e) {
    const err = e as { code?: string; step?: string; errno?: number; message?: string };
    return { ok: false, ...(err.code ? { code: err.code } : {}), ...(err.step ? { step: err.step } : {}), ...(err.errno !== undefined ? { errno: err.errno } : {}), message: String(err.message ?? e) };
  }
}

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse('doctor', argv, { json: { type: 'boolean' }, profile: { type: 'string', short: 'p' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const { probeHost } = await import('../host/probe.js');
  const { planLaunch, refusalReason } = await import('../launch.js');
  const { chooseMode, isNamespacesRefusal } = await import('../plan/mode.js');
  const facts = probeHost({ checkUserns: true, fresh: true });

  const trials: { namespaces: Trial; inPlace?: Trial } = { namespaces: await trial('namespaces') };
  const ns = trials.namespaces;
  const refused: NamespacesRefusal | undefined =
    !ns.ok && ns.step && ns.errno !== undefined && isNamespacesRefusal({ step: ns.step, errno: ns.errno }) ? { step: ns.step, errno: ns.errno, reason: refusalReason(ns.step, ns.errno, facts) } : undefined;
  // The probe only creates a user namespace; the trial is what `run` will repeat, so the mode
  // follows the trial.
  const host = facts;

  let layers: { layer: string; status: string; detail: string; hint?: string }[] = [];
  let decision: ModeDecision | undefined;
  let refusal: string | undefined;
  try {
    const planned = await planLaunch({ command: ['true'], host, ...(refused ? { refused } : {}), ...(values.profile ? { profile: values.profile } : {}) });
    layers = planned.plan.report.layers;
    decision = chooseMode(planned.loaded.profile, host, refused);
  } catch (e) {
    refusal = (e as Error).message;
  }
  if (decision?.mode === 'in-place') trials.inPlace = await trial('in-place');
  const chosenTrial = decision?.mode === 'in-place' ? trials.inPlace! : ns;
  const failed = refusal !== undefined || !chosenTrial.ok;

  if (values.json) {
    process.stdout.write(
      JSON.stringify({ host, mode: decision?.mode ?? null, modeReason: decision?.reason ?? null, trials, layers, ...(refusal ? { refused: refusal } : {}) }, null, 2) + '\n',
    );
    return failed ? 1 : 0;
  }
  const out: string[] = [];
  out.push(`kernel ${host.kernelRelease} (${host.arch}), running as uid ${host.uid}${host.isRoot ? ' (root: sandboxes run as a dedicated uid)' : ''}`);
  out.push(`user namespaces: ${host.userns.available === true ? 'available' : `UNAVAILABLE — ${host.userns.reason}`}`);
  out.push(`namespaces trial (clone, id maps, sethostname, mounts, /proc): ${ns.ok ? 'ok' : `FAILED${ns.step ? ` at ${ns.step}` : ''} — ${ns.message?.replace(/\n\s*/g, ' ')}`}`);
  out.push(`landlock: ${host.landlock.abi ? `ABI ${host.landlock.abi}` : `unavailable — ${host.landlock.reason}`}`);
  out.push(`seccomp: ${host.seccomp.available ? 'available' : `unavailable — ${host.seccomp.reason}`}${host.seccomp.alreadyFiltered ? ' (this process is already under a seccomp filter)' : ''}`);
  out.push(`cgroup v2: ${host.cgroup.reason ? `unavailable — ${host.cgroup.reason}` : `${host.cgroup.dir} (${host.cgroup.controllers.join(', ')})`}`);
  out.push(`container: ${host.container.inContainer ? `yes (${host.container.evidence.join('; ')})` : 'no'}`);
  if (decision) {
    // auto's fallback carries a warning; an explicit mode is its own reason
    out.push(`mode: ${decision.mode}${decision.mode === 'in-place' && decision.warning ? ` (no user namespaces: ${refused?.reason ?? host.userns.reason})` : ` (${decision.reason})`}`);
    if (trials.inPlace) out.push(`in-place trial: ${trials.inPlace.ok ? 'ok' : `FAILED${trials.inPlace.step ? ` at ${trials.inPlace.step}` : ''} — ${trials.inPlace.message?.replace(/\n\s*/g, ' ')}`}`);
  }
  out.push('');
  if (refusal) {
    out.push(`A sandbox with this profile would be REFUSED here:\n  ${refusal.replace(/\n/g, '\n  ')}`);
  } else {
    const w = Math.max(...layers.map((l) => l.layer.length));
    const s = Math.max(...layers.map((l) => l.status.length));
    out.push(`${'layer'.padEnd(w)}  ${'status'.padEnd(s)}  detail`);
    for (const l of layers) {
      out.push(`${l.layer.padEnd(w)}  ${l.status.padEnd(s)}  ${l.detail}`);
      if (l.hint && l.status !== 'enforced' && l.status !== 'off') out.push(`${' '.repeat(w + s + 4)}hint: ${l.hint}`);
    }
    if (!chosenTrial.ok) out.push(`\nA sandbox would FAIL to start here in ${decision!.mode} mode: ${chosenTrial.message}`);
  }
  process.stdout.write(out.join('\n') + '\n');
  return failed ? 1 : 0;
}
