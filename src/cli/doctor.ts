import { parse } from './args.js';

const DOCTOR_HELP = `Usage: clawjail doctor [--json] [--profile P]

Probes this host and prints, for each layer, whether clawjail can enforce it here and why not.
`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parse('doctor', argv, { json: { type: 'boolean' }, profile: { type: 'string', short: 'p' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const { probeHost } = await import('../host/probe.js');
  const { planLaunch } = await import('../launch.js');
  const facts = probeHost({ checkUserns: true });
  let layers: { layer: string; status: string; detail: string; hint?: string }[] = [];
  let refused: string | undefined;
  try {
    layers = (await planLaunch({ command: ['true'], ...(values.profile ? { profile: values.profile } : {}) })).plan.report.layers;
  } catch (e) {
    refused = (e as Error).message;
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ host: facts, layers, ...(refused ? { refused } : {}) }, null, 2) + '\n');
    return refused ? 1 : 0;
  }
  const out: string[] = [];
  out.push(`kernel ${facts.kernelRelease} (${facts.arch}), running as uid ${facts.uid}${facts.isRoot ? ' (root: sandboxes run as a dedicated uid)' : ''}`);
  out.push(`user namespaces: ${facts.userns.available === true ? 'available' : `UNAVAILABLE — ${facts.userns.reason}`}`);
  out.push(`landlock: ${facts.landlock.abi ? `ABI ${facts.landlock.abi}` : `unavailable — ${facts.landlock.reason}`}`);
  out.push(`seccomp: ${facts.seccomp.available ? 'available' : `unavailable — ${facts.seccomp.reason}`}${facts.seccomp.alreadyFiltered ? ' (this process is already under a seccomp filter)' : ''}`);
  out.push(`cgroup v2: ${facts.cgroup.reason ? `unavailable — ${facts.cgroup.reason}` : `${facts.cgroup.dir} (${facts.cgroup.controllers.join(', ')})`}`);
  out.push(`container: ${facts.container.inContainer ? `yes (${facts.container.evidence.join('; ')})` : 'no'}`);
  out.push('');
  if (refused) {
    out.push(`A sandbox with this profile would be REFUSED here:\n  ${refused.replace(/\n/g, '\n  ')}`);
  } else {
    const w = Math.max(...layers.map((l) => l.layer.length));
    const s = Math.max(...layers.map((l) => l.status.length));
    out.push(`${'layer'.padEnd(w)}  ${'status'.padEnd(s)}  detail`);
    for (const l of layers) {
      out.push(`${l.layer.padEnd(w)}  ${l.status.padEnd(s)}  ${l.detail}`);
      if (l.hint && l.status !== 'enforced' && l.status !== 'off') out.push(`${' '.repeat(w + s + 4)}hint: ${l.hint}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  return refused ? 1 : 0;
}
