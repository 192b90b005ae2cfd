import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ClawjailError } from '../errors.js';
import { applyLogLevelFlag, parse, usageError } from './args.js';

const HELP = `Usage:
  clawjail tenants serve --config tenants.yaml [--socket PATH]
                              one sandbox per tenant, restarted with backoff; holds the control
                              socket the other subcommands use; SIGTERM/SIGINT stops all (<= 5 s)
  clawjail tenants ls [--json]                    tenants, state, uid, pid, gateway, memory
  clawjail tenants add NAME [--spec FILE] [--uid N] [--gateway PORT[:HOSTPORT]] [--health PATH]
                         [--allow-host HOST[:PORT]]... [-- COMMAND ARGS...]
  clawjail tenants rm NAME                        stop it and free its uid (its state dir stays)
  clawjail tenants restart NAME
  clawjail tenants logs NAME                      the tail of its output
  clawjail tenants k8s --config tenants.yaml [--out DIR] [--mode namespaces|in-place]
                         [--image IMAGE] [--namespace NS]
                              Kubernetes manifests: a pod per tenant (see deploy/kubernetes/)

Options:
      --socket PATH   the orchestrator's control socket (default: /run/clawjail/tenants.sock for
                      root, $XDG_RUNTIME_DIR/clawjail/tenants.sock otherwise)
`;

const OPTIONS = {
  config: { type: 'string' },
  socket: { type: 'string' },
  json: { type: 'boolean' },
  spec: { type: 'string' },
  uid: { type: 'string' },
  gateway: { type: 'string' },
  health: { type: 'string' },
  'allow-host': { type: 'string', multiple: true },
  out: { type: 'string' },
  mode: { type: 'string' },
  image: { type: 'string' },
  namespace: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parse<typeof OPTIONS>>['values'];

export async function tenantsCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const ours = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  const { values: v, positionals } = parse('tenants', ours, OPTIONS);
  if (v.help || positionals.length === 0) {
    process.stdout.write(HELP);
    return v.help ? 0 : 2;
  }
  await applyLogLevelFlag(v['log-level'], 'tenants');
  const [sub, ...args] = positionals;
  const only = (allowed: (keyof Values)[]) => {
    for (const k of Object.keys(v) as (keyof Values)[]) {
      if (v[k] !== undefined && !allowed.includes(k) && k !== 'log-level') throw usageError(`tenants ${sub}: --${k} does not apply here`, 'tenants');
    }
    if (command.length && sub !== 'add') throw usageError(`tenants ${sub} takes no command after --`, 'tenants');
  };
  const oneName = () => {
    if (args.length !== 1) throw usageError(`tenants ${sub} takes exactly one tenant name`, 'tenants');
    return args[0]!;
  };
  switch (sub) {
    case 'serve':
      only(['config', 'socket']);
      if (args.length) throw usageError(`tenants serve takes no arguments (got ${args.join(' ')})`, 'tenants');
      if (!v.config) throw usageError('tenants serve needs --config tenants.yaml', 'tenants');
      return serve(v.config, v.socket);
    case 'ls': {
      only(['socket', 'json']);
      if (args.length) throw usageError('tenants ls takes no arguments', 'tenants');
      const { tenants } = await (await client(v)).list();
      if (v.json) process.stdout.write(JSON.stringify({ tenants }, null, 2) + '\n');
      else process.stdout.write(formatList(tenants));
      return 0;
    }
    case 'add': {
      only(['socket', 'spec', 'uid', 'gateway', 'health', 'allow-host']);
      const spec = await specFromFlags(oneName(), v, command);
      const st = await (await client(v)).add(spec);
      process.stdout.write(`added ${st.name}: ${st.state}, uid ${st.uid}, state ${st.stateDir}${st.gateway ? `, gateway http://${st.gateway.hostAddress}:${st.gateway.hostPort}/` : ''}\n`);
      return 0;
    }
    case 'rm': {
      only(['socket']);
      const r = await (await client(v)).remove(oneName());
      process.stdout.write(`removed ${r.removed}; its state stays in ${r.stateDir}\n`);
      return 0;
    }
    case 'restart': {
      only(['socket']);
      const st = await (await client(v)).restart(oneName());
      process.stdout.write(`restarted ${st.name}: pid ${st.pid ?? '-'}\n`);
      return 0;
    }
    case 'logs': {
      only(['socket']);
      process.stdout.write(await (await client(v)).logs(oneName()));
      return 0;
    }
    case 'k8s': {
      only(['config', 'out', 'mode', 'image', 'namespace']);
      if (!v.config) throw usageError('tenants k8s needs --config tenants.yaml', 'tenants');
      return k8s(v);
    }
    default:
      throw usageError(`unknown tenants subcommand '${sub}' (serve, ls, add, rm, restart, logs, k8s)`, 'tenants');
  }
}

async function client(v: Values) {
  const { createTenantsClient, tenantsSocketPath } = await import('../tenants/control.js');
  return createTenantsClient(v.socket ?? tenantsSocketPath());
}

async function specFromFlags(name: string, v: Values, command: string[]): Promise<Record<string, unknown>> {
  let spec: Record<string, unknown> = { name };
  if (v.spec) {
    let raw: unknown;
    try {
      raw = parseYaml(readFileSync(v.spec, 'utf8'));
    } catch (e) {
      throw new ClawjailError('ERR_CLAWJAIL_TENANT_CONFIG', `cannot read the tenant spec ${v.spec}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0]}`, { hint: 'give a YAML or JSON file holding one tenant entry', path: v.spec, cause: e });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ClawjailError('ERR_CLAWJAIL_TENANT_CONFIG', `${v.spec} must hold one tenant entry (a mapping)`, { hint: 'e.g. `command: [python3, app.py]`' });
    spec = { ...(raw as Record<string, unknown>), name };
  }
  if (command.length) spec.command = command;
  if (v.uid !== undefined) {
    if (!/^\d+$/.test(v.uid)) throw usageError(`--uid ${v.uid}: expected a number`, 'tenants');
    spec.uid = Number(v.uid);
  }
  if (v.gateway !== undefined) {
    const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(v.gateway);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535 || Number(m[2] ?? 0) > 65535) throw usageError(`--gateway ${v.gateway}: expected PORT or PORT:HOSTPORT (the port inside, and the host loopback port, 0 for a free one)`, 'tenants');
    spec.gateway = { ...(spec.gateway as object | undefined), port: Number(m[1]), hostPort: Number(m[2] ?? 0) };
  }
  if (v.health !== undefined) {
    if (!spec.gateway) throw usageError('--health needs --gateway (the health path is requested on the gateway port)', 'tenants');
    (spec.gateway as Record<string, unknown>).health = v.health;
  }
  if (v['allow-host']?.length) {
    const { parseAllowHostFlag } = await import('../profile/network.js');
    spec.allow = [...((spec.allow as unknown[] | undefined) ?? []), ...v['allow-host'].map(parseAllowHostFlag)];
  }
  if (!spec.command) throw usageError(`tenants add ${name}: give the command after --, or a --spec file with one`, 'tenants');
  return spec;
}

function formatList(tenants: import('../tenants/control.js').ListedTenant[]): string {
  if (tenants.length === 0) return 'no tenants\n';
  const rows = tenants.map((t) => [
    t.name,
    t.state,
    String(t.uid),
    t.pid ? String(t.pid) : '-',
    t.gateway ? `${t.gateway.hostAddress}:${t.gateway.hostPort}` : '-',
    String(t.restarts),
    t.rssBytes ? `${(t.rssBytes / 1048576).toFixed(1)}M` : '-',
  ]);
  const table = [['NAME', 'STATE', 'UID', 'PID', 'GATEWAY', 'RESTARTS', 'RSS'], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

async function serve(configPath: string, socket: string | undefined): Promise<number> {
  const { loadTenantsConfig } = await import('../tenants/config.js');
  const { createOrchestrator } = await import('../tenants/orchestrator.js');
  const { createTenantsControlServer } = await import('../tenants/control.js');
  const config = loadTenantsConfig(configPath);
  const orch = createOrchestrator({ config });
  const control = createTenantsControlServer(orch, socket ? { path: socket } : {});
  // The socket first: a second `serve` is refused before it starts any tenant.
  await control.listen();
  let edge: { close(): Promise<void>; port: number } | undefined;
  const say = (line: string) => process.stderr.write(`clawjail tenants: ${line}\n`);
  orch.on('event', (e: import('../tenants/orchestrator.js').TenantEvent) => {
    if (e.kind === 'audit' || e.kind === 'starting') return;
    const { tenant, kind, time: _t, ...rest } = e;
    say(`${tenant}: ${kind}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`);
  });
  let stopping: Promise<number> | undefined;
  const stop = (signal: string) =>
    (stopping ??= (async () => {
      say(`${signal}: stopping ${orch.list().length} tenant(s)`);
      await Promise.all([orch.close(3500), control.close(), edge?.close()]);
      say('stopped');
      return 0;
    })());
  const done = new Promise<number>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(s, () => void stop(s).then(resolve));
  });
  try {
    const started = await orch.start();
    if (config.edge) {
      const { createEdge } = await import('../tenants/edge.js');
      edge = await createEdge(orch, config.edge);
      say(`edge on http://${config.edge.host}:${edge.port}/`);
    }
    say(`serving ${started.length} tenant(s); control socket ${control.path}`);
  } catch (e) {
    await Promise.all([orch.close(1000), control.close(), edge?.close()]);
    throw e;
  }
  return done;
}

async function k8s(v: Values): Promise<number> {
  const { loadTenantsConfig } = await import('../tenants/config.js');
  const { buildKubernetesManifests, renderManifests } = await import('../tenants/k8s.js');
  const config = loadTenantsConfig(v.config!);
  if (v.mode !== undefined && v.mode !== 'namespaces' && v.mode !== 'in-place') throw usageError(`--mode ${v.mode}: expected namespaces or in-place`, 'tenants');
  const docs = buildKubernetesManifests(config, {
    ...(v.mode ? { mode: v.mode as 'namespaces' | 'in-place' } : {}),
    ...(v.image ? { image: v.image } : {}),
    ...(v.namespace ? { namespace: v.namespace } : {}),
  });
  if (!v.out) {
    process.stdout.write(renderManifests(docs));
    return 0;
  }
  mkdirSync(v.out, { recursive: true });
  const byTenant = new Map<string, object[]>();
  for (const d of docs) {
    const key = (d as { metadata: { labels?: Record<string, string> } }).metadata.labels?.['clawjail.dev/tenant'] ?? '_shared';
    byTenant.set(key, [...(byTenant.get(key) ?? []), d]);
  }
  for (const [key, list] of byTenant) writeFileSync(join(v.out, `${key}.yaml`), renderManifests(list));
  process.stdout.write(`wrote ${[...byTenant.keys()].map((k) => `${k}.yaml`).join(', ')} to ${v.out}\n`);
  return 0;
}
