import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ClawjailError } from '../errors.js';
import { applyLogLevelFlag, parse, usageError } from './args.js';
import { overridesFromFlags, RUN_FIELD_LABELS, RUN_OPTIONS, superviseLaunch } from './run.js';
import { checkStatusTarget } from './status.js';
import { say } from '../log.js';

const OPENCLAW_HELP = `Usage:
  clawjail openclaw [options] -- OPENCLAW_ARGS...   run an openclaw command in the sandbox
      e.g. clawjail openclaw -- gateway run
           clawjail openclaw -- agent exec "summarise README.md" --json
  clawjail openclaw install [--version V]           install the pinned OpenClaw and a Node 24 into clawjail's cache
  clawjail openclaw init [--from ~/.openclaw] [--with-credentials] [--force]
                                                    prepare a sandbox: state dir, config pointed at the
                                                    inference router, API keys moved out, bootstrap pinned
  clawjail openclaw pin                             accept the current bootstrap files (AGENTS.md, SOUL.md, ...)
  clawjail openclaw audit [--json] [--fix]          openclaw's security audit plus clawjail's checks

Options for every subcommand:
      --name NAME             which sandbox (default: default); state in $XDG_STATE_HOME/clawjail/NAME
      --openclaw PATH         an OpenClaw install to use (default: clawjail's cache, then PATH)
      --node PATH             a Node >= 24 to run it with
Options for running (also all of \`clawjail run --help\`):
      --gateway-port PORT     host loopback port for the gateway (default 18789; gateway commands only)
      --writable-bootstrap    let the agent edit its bootstrap files (no read-only binds, no pin check)
      --writable-config       let the agent edit its own config (inference, gateway auth)
`;

const OPENCLAW_OPTIONS = {
  ...RUN_OPTIONS,
  openclaw: { type: 'string' },
  node: { type: 'string' },
  'gateway-port': { type: 'string' },
  'writable-bootstrap': { type: 'boolean' },
  'writable-config': { type: 'boolean' },
  from: { type: 'string' },
  'with-credentials': { type: 'boolean' },
  force: { type: 'boolean' },
  version: { type: 'string' },
  json: { type: 'boolean' },
  fix: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parse<typeof OPENCLAW_OPTIONS>>['values'];

export async function openclawCommand(argv: string[]): Promise<number> {
  // Everything after -- belongs to openclaw; before it, the first word may be a subcommand.
  const dash = argv.indexOf('--');
  const ours = dash < 0 ? argv : argv.slice(0, dash);
  const theirs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values: v, positionals } = parse('openclaw', ours, OPENCLAW_OPTIONS);
  if (v.help) {
    process.stdout.write(OPENCLAW_HELP);
    return 0;
  }
  await applyLogLevelFlag(v['log-level'], 'openclaw');
  const sub = positionals[0];
  if (positionals.length > 1) throw usageError(`unexpected arguments: ${positionals.slice(1).join(' ')} (openclaw's own arguments go after --)`, 'openclaw');
  switch (sub) {
    case 'install':
      return installCommand(v);
    case 'init':
      return initCommand(v);
    case 'pin':
      return pinCommand(v);
    case 'audit':
      return auditCommand(v);
    case undefined:
      if (theirs.length === 0) throw usageError('nothing to run: give openclaw\'s arguments after --, e.g. clawjail openclaw -- gateway run', 'openclaw');
      return runOpenClaw(v, theirs);
    default:
      throw usageError(`unknown openclaw subcommand '${sub}' (install, init, pin, audit; openclaw's own commands go after --)`, 'openclaw');
  }
}

async function installCommand(v: Values): Promise<number> {
  const { installOpenClaw } = await import('../openclaw/install.js');
  const tty = process.stderr.isTTY;
  const started = Date.now();
  const install = await installOpenClaw({
    ...(v.version ? { version: v.version } : {}),
    onProgress: (p) => {
      const line = `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${p.message}`;
      if (tty) process.stderr.write(`\r\x1b[K${line}`);
      else say('info', line);
    },
  });
  if (tty) process.stderr.write('\n');
  process.stdout.write(`openclaw ${install.version} with node ${install.nodeVersion}${install.pinned ? ' (pinned)' : ' (NOT the pinned version)'}\n  openclaw: ${install.openclawEntry}\n  node:     ${install.nodeBin}\n`);
  return 0;
}

async function sandboxOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.geteuid?.() !== 0) return undefined;
  const { loadProfileCached } = await import('../profile/cached.js');
  const { profile } = await loadProfileCached({ profile: 'openclaw' });
  return { uid: profile.identity.uid, gid: profile.identity.gid };
}

async function findInstall(v: Values) {
  const { findOpenClaw } = await import('../openclaw/install.js');
  return findOpenClaw({ ...(v.openclaw ? { openclaw: v.openclaw } : {}), ...(v.node ? { node: v.node } : {}) });
}

async function initCommand(v: Values): Promise<number> {
  const { initOpenClawSandbox } = await import('../openclaw/init.js');
  let entry: string | undefined;
  try {
    entry = (await findInstall(v)).openclawEntry;
  } catch {
    entry = undefined; // init works without an install; the workspace is then seeded on first start
  }
  const owner = await sandboxOwner();
  const r = await initOpenClawSandbox({
    ...(v.name ? { name: v.name } : {}),
    ...(v.from ? { from: v.from } : {}),
    ...(v['with-credentials'] ? { withCredentials: true } : {}),
    ...(v.force ? { force: true } : {}),
    ...(entry ? { openclawEntry: entry } : {}),
    ...(owner ? { owner } : {}),
  });
  for (const w of r.warnings) say('warn', w);
  const out = [
    `sandbox "${r.paths.name}" ready: ${r.paths.sandboxDir} (mounted at /sandbox)`,
    `  config:    ${r.paths.config} (read-only inside; models point at the inference router)`,
    `  gateway:   token auth, token in the config (gateway.auth.token)`,
    `  routes:    ${r.routes.length ? r.routes.map((x) => `${x.name} -> ${x.upstream}${x.credential ? ` (key from ${'env' in x.credential ? `$${x.credential.env}` : x.credential.file})` : ''}`).join(', ') : 'none (add a model provider, or --route on each run)'}`,
    `  bootstrap: pinned in ${r.paths.manifest}${r.seeded.length ? ` (seeded ${r.seeded.join(', ')})` : ''}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

async function sandboxFor(v: Values) {
  const { sandboxPaths } = await import('../openclaw/paths.js');
  const { readSandboxRecord } = await import('../openclaw/init.js');
  const paths = sandboxPaths({ name: v.name ?? 'default' });
  const record = await readSandboxRecord(paths.record);
  return { paths, record };
}

async function pinCommand(v: Values): Promise<number> {
  const { paths, record } = await sandboxFor(v);
  if (!record) throw noSandbox(paths.name);
  const { pinBootstrap } = await import('../openclaw/bootstrap.js');
  const manifest = await pinBootstrap(paths.workspace, paths.manifest, { roots: record.bootstrapRoots });
  const files = manifest.entries.filter((e) => e.kind === 'file');
  process.stdout.write(`pinned ${files.length} bootstrap file(s) of "${paths.name}":\n${files.map((f) => `  ${(f.sha256 ?? '').slice(0, 12)}  ${f.path}`).join('\n')}\n`);
  return 0;
}

function noSandbox(name: string): ClawjailError {
  const existing = join(homedir(), '.openclaw');
  return new ClawjailError('ERR_CLAWJAIL_NOT_FOUND', `there is no OpenClaw sandbox named "${name}"`, {
    hint: existsSync(existing)
      ? `create it from your existing setup with \`clawjail openclaw init --from ${existing}${name === 'default' ? '' : ` --name ${name}`}\``
      : `create it with \`clawjail openclaw init${name === 'default' ? '' : ` --name ${name}`}\``,
  });
}

/** openclaw flags → launcher input (install found, pin verified), then the same supervision as `run`. */
async function runOpenClaw(v: Values, args: string[]): Promise<number> {
  checkStatusTarget(v['status-json'], 'openclaw');
  const { paths, record } = await sandboxFor(v);
  if (!record) throw noSandbox(paths.name);
  const install = await findInstall(v);
  const { verifyBootstrap } = await import('../openclaw/bootstrap.js');
  const { buildOpenClawLaunch } = await import('../openclaw/command.js');
  const gateway = args[0] === 'gateway';
  let gatewayHostPort: number | undefined;
  if (v['gateway-port'] !== undefined) {
    gatewayHostPort = Number(v['gateway-port']);
    if (!/^\d+$/.test(v['gateway-port']) || gatewayHostPort > 65535) throw usageError(`--gateway-port ${v['gateway-port']}: expected a port 0..65535`, 'openclaw');
  }
  const { overrides, command } = buildOpenClawLaunch({
    name: paths.name,
    install,
    paths,
    ...(v['writable-bootstrap'] ? {} : { bootstrap: await verifyBootstrap(paths.workspace, paths.manifest) }),
    routes: record.routes,
    flags: {
      ...(v['writable-bootstrap'] ? { writableBootstrap: true } : {}),
      ...(v['writable-config'] ? { writableConfig: true } : {}),
      ...(gatewayHostPort !== undefined ? { gatewayHostPort } : {}),
      noPublish: !gateway,
    },
    args,
  });
  const options = {
    profile: v.profile ?? 'openclaw',
    overrides: [overrides, await overridesFromFlags(v)],
    fieldLabels: RUN_FIELD_LABELS,
    command,
    ...(v['audit-log'] ? { auditLog: v['audit-log'] } : {}),
  };
  if (v['dry-run']) {
    const { planLaunch } = await import('../launch.js');
    process.stdout.write(JSON.stringify((await planLaunch(options)).plan, null, 2) + '\n');
    return 0;
  }
  if (!install.pinned) say('warn', `OpenClaw ${install.version} is not the version clawjail pins; \`clawjail openclaw audit\` reports it`);
  return superviseLaunch(options, v['status-json'], (sb) => {
    for (const p of sb.published) say('info', `OpenClaw gateway at http://${p.hostAddress}:${p.hostPort}/ (token: gateway.auth.token in ${paths.config})`, { url: `http://${p.hostAddress}:${p.hostPort}/` });
  });
}

async function auditCommand(v: Values): Promise<number> {
  const { paths, record } = await sandboxFor(v);
  if (!record) throw noSandbox(paths.name);
  const audit = await import('../openclaw/audit.js');
  const { resolveStateHome } = await import('../openclaw/paths.js');
  const { loadProfileCached } = await import('../profile/cached.js');
  const install = await findInstall(v);
  const { profile } = await loadProfileCached({ profile: v.profile ?? 'openclaw', overrides: [await overridesFromFlags(v)] });
  const facts = await audit.gatherAuditFacts({
    paths,
    stateHome: resolveStateHome(),
    profile,
    install: { version: install.version, pinned: install.pinned },
    ...(v['writable-bootstrap'] ? { writableBootstrap: true } : {}),
    ...(v['writable-config'] ? { writableConfig: true } : {}),
  });
  const ours = audit.runClawjailChecks(facts);
  // openclaw's own audit, run where it will run: inside the sandbox.
  const theirs = await runInside(v, ['security', 'audit', '--json']);
  let findings = theirs.code === 0 ? audit.parseOpenClawAudit(theirs.stdout) : [];
  const report = audit.mergeFindings(ours, findings);
  if (theirs.code !== 0) say('warn', `\`openclaw security audit\` failed inside the sandbox (exit ${theirs.code}); only clawjail's checks are reported\n${theirs.stderr.slice(-2000)}`);
  if (v.fix) {
    const fixed = await applyFixes(paths, report, audit);
    if (fixed.length) say('info', `fixed: ${fixed.join(', ')}`);
    findings = [];
  }
  if (v.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else {
    const lines = report.findings.map((f) => `${f.severity.toUpperCase().padEnd(8)} ${f.id}: ${f.title}${f.detail ? `\n         ${f.detail.replace(/\n/g, '\n         ')}` : ''}${f.fix ? `\n         fix: ${f.fix}` : ''}`);
    process.stdout.write((lines.length ? lines.join('\n') : 'no findings') + '\n');
  }
  return audit.auditExitCode(report);
}

async function applyFixes(paths: { config: string; openclawDir: string }, report: import('../openclaw/audit.js').AuditReport, audit: typeof import('../openclaw/audit.js')): Promise<string[]> {
  const { readFile, writeFile, rename } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const { parseConfigText } = await import('../openclaw/config.js');
  const config = parseConfigText(await readFile(paths.config, 'utf8'), undefined, paths.config);
  const { config: next, fixed: applied } = audit.applySafeConfigFixes(config, report.findings, () => randomBytes(32).toString('hex'));
  if (applied.length) {
    const tmp = `${paths.config}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, paths.config);
  }
  if (report.findings.some((f) => f.id === 'clawjail.state_perms')) {
    await audit.fixPermissions(paths.openclawDir, paths.config);
    applied.push('clawjail.state_perms');
  }
  return applied;
}

/** Runs an openclaw command to completion inside the sandbox and collects its output. */
async function runInside(v: Values, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { paths, record } = await sandboxFor(v);
  const install = await findInstall(v);
  const { verifyBootstrap } = await import('../openclaw/bootstrap.js');
  const { buildOpenClawLaunch } = await import('../openclaw/command.js');
  const { launch } = await import('../launch.js');
  const { overrides, command } = buildOpenClawLaunch({
    name: `${paths.name}-audit`,
    install,
    paths,
    bootstrap: await verifyBootstrap(paths.workspace, paths.manifest),
    routes: record!.routes,
    flags: { noPublish: true, writableBootstrap: true },
    args,
  });
  const sb = await launch({ profile: v.profile ?? 'openclaw', overrides: [overrides], command, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const done = Promise.all([
    (async () => {
      for await (const c of sb.stdout!) stdout += (c as Buffer).toString();
    })(),
    (async () => {
      for await (const c of sb.stderr!) stderr += (c as Buffer).toString();
    })(),
  ]);
  const st = await sb.exited;
  await done;
  return { code: st.status, stdout, stderr };
}
