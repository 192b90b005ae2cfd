import { chmod, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { verifyBootstrap, type BootstrapChange, type BootstrapManifest } from './bootstrap.js';
import { isObject, parseConfigText, type OpenClawConfig } from './config.js';
import { readFile } from 'node:fs/promises';
import { OPENCLAW_VERSION } from './install.js';
import { INSIDE, PLACEHOLDER_API_KEY, type SandboxPaths } from './paths.js';

/**
 * `clawjail openclaw audit`: clawjail's own checks (things only the sandbox's outside can see:
 * shared dirs, egress rules, pins, what credentials sit inside) merged with the findings of
 * `openclaw security audit --json`. The checks are pure functions over collected facts.
 */

export type Severity = 'critical' | 'warn' | 'info';

export interface Finding {
  id: string;
  severity: Severity;
  title: string;
  detail: string;
  fix?: string;
  source: 'clawjail' | 'openclaw';
}

/** A network allow rule as the profile holds it (the egress schema owns the full type). */
export interface AllowRuleLike {
  host: string;
  ports?: number[];
  methods?: string[];
  paths?: string[];
}

export interface OtherSandbox {
  name: string;
  /** Real path of its /sandbox dir. */
  sandboxDir: string;
  /** Real paths it binds read-write. */
  rwBinds?: string[];
}

export interface AuditFacts {
  name: string;
  /** The sandbox's config as clawjail wrote it (host copy). */
  config: OpenClawConfig;
  /** Real path of this sandbox's /sandbox dir. */
  sandboxDir: string;
  network?: { mode?: string; allow?: AllowRuleLike[]; approvals?: { enabled?: boolean } };
  /** Real paths of this sandbox's read-write binds, with their inside destinations. */
  rwBinds?: { src: string; dest: string }[];
  env?: Record<string, string>;
  envPass?: string[];
  others: OtherSandbox[];
  manifest?: BootstrapManifest;
  bootstrapChanges?: BootstrapChange[];
  writableBootstrap?: boolean;
  writableConfig?: boolean;
  install?: { version: string; pinned: boolean };
  /** Sandbox-relative paths of credential files present in the sandbox dir. */
  credentialFiles: string[];
  /** st_mode & 0o777 of the state dir and the config file. */
  modes?: { stateDir?: number; config?: number };
}

const SECRET_ENV_RE = /(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)/i;
const SECRET_KEY_RE = /^(apiKey|token|botToken|appToken|userToken|signingSecret|password|secret|accessToken|refreshToken|clientSecret|webhookSecret)$/;

function within(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function overlaps(a: string, b: string): boolean {
  return within(a, b) || within(b, a);
}

export function checkSharedStateDir(f: AuditFacts): Finding[] {
  const shared = f.others.filter((o) => overlaps(o.sandboxDir, f.sandboxDir) || (f.rwBinds ?? []).some((b) => overlaps(b.src, o.sandboxDir)));
  if (shared.length === 0) return [];
  return [{
    id: 'clawjail.state_dir_shared',
    severity: 'critical',
    title: 'State dir shared with another sandbox',
    detail: `${f.sandboxDir} (or a read-write bind) overlaps the state of: ${shared.map((o) => `${o.name} (${o.sandboxDir})`).join(', ')}. One OpenClaw state dir serves one trust boundary; sandboxes that share it share sessions, credentials and the gateway's identity.`,
    fix: 'give each sandbox its own --name (its own state dir) and remove binds into other sandboxes',
    source: 'clawjail',
  }];
}

export function checkSharedMemory(f: AuditFacts): Finding[] {
  const memoryDests = (f.rwBinds ?? []).filter((b) => b.dest === `${INSIDE.workspace}/MEMORY.md` || within(b.dest, `${INSIDE.workspace}/memory`));
  const sharedWith = (src: string) => f.others.filter((o) => (o.rwBinds ?? []).some((r) => overlaps(r, src)) || within(src, o.sandboxDir));
  const hits = memoryDests.map((b) => ({ b, others: sharedWith(b.src) })).filter((h) => h.others.length > 0);
  if (hits.length === 0) return [];
  return [{
    id: 'clawjail.memory_shared',
    severity: 'critical',
    title: 'Agent memory shared between sandboxes',
    detail: hits.map((h) => `${h.b.src} → ${h.b.dest} is also writable by ${h.others.map((o) => o.name).join(', ')}`).join('; ') + '. What one agent writes to memory is read into the other\'s context: a prompt injection crosses the boundary.',
    fix: 'bind memory read-only into the other sandboxes, or give each its own',
    source: 'clawjail',
  }];
}

export function checkAutoUpdate(f: AuditFacts): Finding[] {
  const c = f.config;
  const problems: string[] = [];
  const update = isObject(c.update) ? c.update : {};
  if (update.checkOnStart !== false) problems.push('update.checkOnStart is not false');
  if (isObject(update.auto) && update.auto.enabled === true) problems.push('update.auto.enabled is true');
  const nodeHost = isObject(c.nodeHost) ? c.nodeHost : {};
  if (!(isObject(nodeHost.autoUpdate) && nodeHost.autoUpdate.enabled === false)) problems.push('nodeHost.autoUpdate.enabled is not false');
  if (f.env && f.env.OPENCLAW_NO_AUTO_UPDATE !== '1') problems.push('OPENCLAW_NO_AUTO_UPDATE is not 1');
  const plugins = isObject(c.plugins) ? c.plugins : {};
  const load = isObject(plugins.load) ? plugins.load : {};
  const writable = (Array.isArray(load.paths) ? load.paths : []).filter((p): p is string => typeof p === 'string' && (within(p, INSIDE.sandbox) || within(p, '/tmp') || !p.startsWith('/')));
  const findings: Finding[] = [];
  if (problems.length > 0) {
    findings.push({
      id: 'clawjail.auto_update',
      severity: 'warn',
      title: 'OpenClaw or its plugins may update themselves',
      detail: `${problems.join('; ')}. Updates replace pinned code with whatever the registry serves next, and need egress the sandbox does not give.`,
      fix: 'set update.checkOnStart=false, update.auto.enabled=false, nodeHost.autoUpdate.enabled=false and OPENCLAW_NO_AUTO_UPDATE=1 (--fix does the config part)',
      source: 'clawjail',
    });
  }
  if (writable.length > 0) {
    findings.push({
      id: 'clawjail.plugins_writable_path',
      severity: 'critical',
      title: 'Plugins load from a path the agent can write',
      detail: `plugins.load.paths includes ${writable.join(', ')}; code written there by the agent runs in the gateway at its next start.`,
      fix: 'load plugins only from read-only binds outside /sandbox and /tmp',
      source: 'clawjail',
    });
  }
  return findings;
}

/** How much a rule lets through beyond one host and port. */
export function ruleBreadth(rule: AllowRuleLike): { severity: Severity; why: string } | undefined {
  const h = rule.host;
  if (h === '*' || h === '0.0.0.0/0' || h === '::/0') return { severity: 'critical', why: 'matches every destination' };
  const cidr = /\/(\d+)$/.exec(h);
  if (cidr) {
    const bits = Number(cidr[1]);
    const full = h.includes(':') ? 128 : 32;
    if (bits < full) return { severity: bits <= (full === 32 ? 8 : 32) ? 'critical' : 'warn', why: `an address range of ${2 ** Math.min(full - bits, 64)} addresses` };
  }
  if (h.startsWith('*.')) return { severity: 'warn', why: `every name under ${h.slice(2)}` };
  if ((rule.ports ?? [443]).length > 2) return { severity: 'warn', why: `${(rule.ports ?? []).length} ports` };
  return undefined;
}

export function describeRule(rule: AllowRuleLike): string {
  const parts = [`${rule.host}:${(rule.ports ?? [443]).join(',')}`];
  if (rule.methods) parts.push(rule.methods.join(','));
  if (rule.paths) parts.push(rule.paths.join(' '));
  return parts.join(' ');
}

export function checkEgress(f: AuditFacts): Finding[] {
  const net = f.network ?? {};
  const allow = net.allow ?? [];
  const findings: Finding[] = [];
  const broad = allow.map((r) => ({ r, b: ruleBreadth(r) })).filter((x) => x.b);
  if (broad.length > 0) {
    findings.push({
      id: 'clawjail.egress_broad',
      severity: broad.some((x) => x.b!.severity === 'critical') ? 'critical' : 'warn',
      title: 'Egress rules broader than one host and port',
      detail: broad.map((x) => `${describeRule(x.r)}: ${x.b!.why}`).join('; '),
      fix: 'replace wildcard and range rules with the exact hosts and ports the channel needs',
      source: 'clawjail',
    });
  }
  findings.push({
    id: 'clawjail.egress_allowlist',
    severity: 'info',
    title: 'Egress allowlist',
    detail:
      net.mode === 'none'
        ? 'network.mode is none: no egress at all'
        : allow.length === 0
          ? `empty: nothing is reachable except the inference router${net.approvals?.enabled ? ' (unknown destinations wait for approval)' : ''}`
          : allow.map(describeRule).join('\n') + (net.approvals?.enabled ? '\n(unknown destinations wait for approval)' : ''),
    source: 'clawjail',
  });
  return findings;
}

export function checkPinnedVersion(f: AuditFacts): Finding[] {
  if (f.install && f.install.pinned && f.install.version === OPENCLAW_VERSION) return [];
  return [{
    id: 'clawjail.openclaw_unpinned',
    severity: 'warn',
    title: 'OpenClaw version not pinned by clawjail',
    detail: f.install ? `running OpenClaw ${f.install.version}; clawjail pins ${OPENCLAW_VERSION} with a verified tarball integrity` : 'the OpenClaw install in use is unknown',
    fix: `run \`clawjail openclaw install\` and use the cached install (drop --openclaw)`,
    source: 'clawjail',
  }];
}

export function checkBootstrap(f: AuditFacts): Finding[] {
  if (f.writableBootstrap) {
    return [{ id: 'clawjail.bootstrap_writable', severity: 'warn', title: 'Bootstrap files writable by the agent', detail: '--writable-bootstrap is set: the agent can rewrite AGENTS.md, SOUL.md, … and so the instructions of every later session.', fix: 'drop --writable-bootstrap', source: 'clawjail' }];
  }
  if (!f.manifest) {
    return [{ id: 'clawjail.bootstrap_unpinned', severity: 'critical', title: 'Bootstrap files not pinned', detail: 'no bootstrap manifest: the launcher cannot tell whether AGENTS.md, SOUL.md, … were changed by an earlier session.', fix: 'review the workspace, then `clawjail openclaw pin`', source: 'clawjail' }];
  }
  const changes = f.bootstrapChanges ?? [];
  if (changes.length === 0) return [];
  return [{ id: 'clawjail.bootstrap_changed', severity: 'critical', title: 'Bootstrap files differ from their pin', detail: changes.map((c) => `${c.change} ${c.path}`).join('; '), fix: 'review the changes, then `clawjail openclaw pin` (the launcher refuses to start until then)', source: 'clawjail' }];
}

export function checkConfigWritable(f: AuditFacts): Finding[] {
  if (!f.writableConfig) return [];
  return [{ id: 'clawjail.config_writable', severity: 'warn', title: 'Config writable by the agent', detail: '--writable-config is set: the agent can re-point its providers, enable tools and open its gateway auth for its next start.', fix: 'drop --writable-config', source: 'clawjail' }];
}

export function checkGateway(f: AuditFacts): Finding[] {
  const g = isObject(f.config.gateway) ? f.config.gateway : {};
  const auth = isObject(g.auth) ? g.auth : {};
  const problems: string[] = [];
  if (g.bind !== undefined && g.bind !== 'loopback') problems.push(`gateway.bind is "${String(g.bind)}"`);
  if (auth.mode === 'none') problems.push('gateway.auth.mode is "none"');
  if (auth.mode === 'token' && (typeof auth.token !== 'string' || auth.token.length < 32)) problems.push('the gateway token is missing or shorter than 32 characters');
  if (problems.length === 0) return [];
  return [{ id: 'clawjail.gateway_exposed', severity: 'critical', title: 'Gateway reachable without a strong token', detail: `${problems.join('; ')}. The published port forwards host loopback connections to it.`, fix: 'bind loopback with token auth (--fix generates a token)', source: 'clawjail' }];
}

export function checkCredentials(f: AuditFacts): Finding[] {
  const findings: Finding[] = [];
  const inside: string[] = [...f.credentialFiles];
  const models = isObject(f.config.models) ? f.config.models : {};
  const providers = isObject(models.providers) ? models.providers : {};
  for (const [id, p] of Object.entries(providers)) {
    if (isObject(p) && typeof p.apiKey === 'string' && p.apiKey !== PLACEHOLDER_API_KEY && p.apiKey !== '' && !/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(p.apiKey)) inside.push(`models.providers.${id}.apiKey in openclaw.json`);
  }
  const secretEnv = [...Object.keys(f.env ?? {}), ...(f.envPass ?? [])].filter((k) => SECRET_ENV_RE.test(k));
  for (const k of secretEnv) inside.push(`environment variable ${k}`);
  if (inside.length > 0) {
    findings.push({
      id: 'clawjail.credentials_inside',
      severity: 'critical',
      title: 'Credentials readable inside the sandbox',
      detail: `${inside.join('; ')}. Anything the agent can read, a prompt injection can send out through an allowed channel.`,
      fix: 'move model keys into inference routes (`clawjail openclaw init` does), drop --with-credentials, and keep secrets out of env.set/env.pass',
      source: 'clawjail',
    });
  }
  const channelSecrets = secretKeyPaths(f.config.channels, 'channels');
  if (channelSecrets.length > 0) {
    findings.push({
      id: 'clawjail.channel_tokens_inside',
      severity: 'warn',
      title: 'Channel tokens readable inside the sandbox',
      detail: `${channelSecrets.join(', ')} in openclaw.json. A channel needs its token inside to work; the agent can read it.`,
      fix: 'use a dedicated bot account per sandbox and a narrow egress rule for its API host',
      source: 'clawjail',
    });
  }
  return findings;
}

function secretKeyPaths(value: unknown, at: string): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => secretKeyPaths(v, `${at}[${i}]`));
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const here = `${at}.${k}`;
    if (SECRET_KEY_RE.test(k) && ((typeof v === 'string' && v !== '') || isObject(v))) return [here];
    return secretKeyPaths(v, here);
  });
}

export function checkPermissions(f: AuditFacts): Finding[] {
  const loose: string[] = [];
  if (f.modes?.stateDir !== undefined && (f.modes.stateDir & 0o077) !== 0) loose.push(`state dir mode ${f.modes.stateDir.toString(8)}`);
  if (f.modes?.config !== undefined && (f.modes.config & 0o077) !== 0) loose.push(`config mode ${f.modes.config.toString(8)}`);
  if (loose.length === 0) return [];
  return [{ id: 'clawjail.state_perms', severity: 'warn', title: 'State readable by other host users', detail: loose.join('; '), fix: 'chmod 700 the state dir and 600 the config (--fix does)', source: 'clawjail' }];
}

const CHECKS = [checkSharedStateDir, checkSharedMemory, checkAutoUpdate, checkEgress, checkPinnedVersion, checkBootstrap, checkConfigWritable, checkGateway, checkCredentials, checkPermissions];

export function runClawjailChecks(facts: AuditFacts): Finding[] {
  return CHECKS.flatMap((c) => c(facts));
}

/**
 * `openclaw security audit --json` prints `{ts, summary, findings: [{checkId, severity, title,
 * detail, remediation?}], …}` and exits 0 whatever it found. Log lines may precede the JSON.
 */
export function parseOpenClawAudit(stdout: string): Finding[] {
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error('no JSON object in `openclaw security audit --json` output');
  const data = JSON.parse(stdout.slice(start)) as { findings?: unknown };
  if (!Array.isArray(data.findings)) throw new Error('`openclaw security audit --json` output has no findings[]');
  return data.findings.filter(isObject).map((x) => {
    const sev = x.severity === 'critical' || x.severity === 'warn' || x.severity === 'info' ? x.severity : 'warn';
    return {
      id: `openclaw.${String(x.checkId ?? 'unknown')}`,
      severity: sev,
      title: String(x.title ?? ''),
      detail: String(x.detail ?? ''),
      ...(typeof x.remediation === 'string' ? { fix: x.remediation } : {}),
      source: 'openclaw' as const,
    };
  });
}

const ORDER: Record<Severity, number> = { critical: 0, warn: 1, info: 2 };

export interface AuditReport {
  findings: Finding[];
  summary: Record<Severity, number>;
}

/** Both sets of findings, critical first; clawjail's before OpenClaw's within a severity. */
export function mergeFindings(clawjail: Finding[], openclaw: Finding[]): AuditReport {
  const findings = [...clawjail, ...openclaw].map((f, i) => ({ f, i })).sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i).map((x) => x.f);
  const summary: Record<Severity, number> = { critical: 0, warn: 0, info: 0 };
  for (const f of findings) summary[f.severity]++;
  return { findings, summary };
}

/** Unlike `openclaw security audit`, a critical finding fails the command. */
export function auditExitCode(report: AuditReport): number {
  return report.summary.critical > 0 ? 1 : 0;
}

/**
 * The config half of `--fix`: turns off self-update and re-closes the gateway (loopback, token).
 * Pins, egress rules and credentials are left to the operator: fixing them changes what is
 * trusted or what works. Returns the ids it fixed.
 */
export function applySafeConfigFixes(config: OpenClawConfig, findings: readonly Finding[], newToken: () => string): { config: OpenClawConfig; fixed: string[] } {
  const c = structuredClone(config);
  const fixed: string[] = [];
  const ids = new Set(findings.map((f) => f.id));
  const obj = (parent: Record<string, unknown>, key: string): Record<string, unknown> => {
    if (!isObject(parent[key])) parent[key] = {};
    return parent[key] as Record<string, unknown>;
  };
  if (ids.has('clawjail.auto_update')) {
    const update = obj(c, 'update');
    update.checkOnStart = false;
    obj(update, 'auto').enabled = false;
    obj(obj(c, 'nodeHost'), 'autoUpdate').enabled = false;
    fixed.push('clawjail.auto_update');
  }
  if (ids.has('clawjail.gateway_exposed')) {
    const g = obj(c, 'gateway');
    g.bind = 'loopback';
    const auth = obj(g, 'auth');
    const token = typeof auth.token === 'string' && auth.token.length >= 32 ? auth.token : newToken();
    g.auth = { mode: 'token', token };
    fixed.push('clawjail.gateway_exposed');
  }
  return { config: c, fixed };
}

/** The file-mode half of `--fix`. */
export async function fixPermissions(stateDir: string, configFile: string): Promise<void> {
  await chmod(stateDir, 0o700);
  await chmod(configFile, 0o600);
}

/** Credential files OpenClaw keeps under its state dir, sandbox-relative (see its secrets-and-storage doc). */
export async function findCredentialFiles(sandboxDir: string): Promise<string[]> {
  const found: string[] = [];
  const state = path.join(sandboxDir, '.openclaw');
  const add = async (rel: string) => {
    try {
      const st = await stat(path.join(sandboxDir, rel));
      if (st.isFile() || (st.isDirectory() && (await readdir(path.join(sandboxDir, rel))).length > 0)) found.push(rel);
    } catch {
      // absent
    }
  };
  await add('.openclaw/credentials');
  await add('.openclaw/secrets.json');
  let agents: string[] = [];
  try {
    agents = await readdir(path.join(state, 'agents'));
  } catch {
    // no agents yet
  }
  for (const a of agents.sort()) {
    await add(`.openclaw/agents/${a}/agent/auth-profiles.json`);
    await add(`.openclaw/agents/${a}/agent/auth.json`);
  }
  return found;
}

/** Real paths, so a symlinked state dir is compared as what it points to. */
export async function realOrSelf(p: string): Promise<string> {
  try {
    return await realpath(p);
  } catch {
    return path.resolve(p);
  }
}

export interface GatherInput {
  paths: SandboxPaths;
  /** Dir holding every sandbox dir (`resolveStateHome()`); its other entries are the other sandboxes. */
  stateHome: string;
  /** The merged profile's sections the checks read. */
  profile: { network?: AuditFacts['network']; env?: { set?: Record<string, string>; pass?: string[] }; filesystem?: { rw?: { src: string; dest?: string }[] } };
  install?: { version: string; pinned: boolean };
  writableBootstrap?: boolean;
  writableConfig?: boolean;
  /** Other sandboxes' read-write binds, when the caller knows their profiles. */
  otherBinds?: Record<string, string[]>;
}

/** Collects {@link AuditFacts} from disk: the sandbox's config, pin, modes, credential files, and its neighbours. */
export async function gatherAuditFacts(input: GatherInput): Promise<AuditFacts> {
  const { paths } = input;
  const sandboxDir = await realOrSelf(paths.sandboxDir);
  const config = parseConfigText(await readFile(paths.config, 'utf8'), undefined, paths.config);
  const others: OtherSandbox[] = [];
  let names: string[] = [];
  try {
    names = await readdir(input.stateHome);
  } catch {
    // no other sandboxes
  }
  for (const n of names.sort()) {
    const dir = await realOrSelf(path.join(input.stateHome, n));
    if (dir === sandboxDir) continue;
    try {
      if (!(await stat(dir)).isDirectory()) continue;
    } catch {
      continue;
    }
    others.push({ name: n, sandboxDir: dir, ...(input.otherBinds?.[n] ? { rwBinds: input.otherBinds[n] } : {}) });
  }
  const rwBinds = await Promise.all((input.profile.filesystem?.rw ?? []).map(async (b) => ({ src: await realOrSelf(b.src), dest: b.dest ?? b.src })));
  const verdict = await verifyBootstrap(paths.workspace, paths.manifest);
  const modeOf = async (p: string) => {
    try {
      return (await stat(p)).mode & 0o777;
    } catch {
      return undefined;
    }
  };
  const stateMode = await modeOf(paths.openclawDir);
  const configMode = await modeOf(paths.config);
  return {
    name: paths.name,
    config,
    sandboxDir,
    ...(input.profile.network ? { network: input.profile.network } : {}),
    rwBinds,
    env: input.profile.env?.set ?? {},
    envPass: input.profile.env?.pass ?? [],
    others,
    ...(verdict.pinned ? { manifest: verdict.manifest, bootstrapChanges: verdict.changes } : {}),
    ...(input.writableBootstrap ? { writableBootstrap: true } : {}),
    ...(input.writableConfig ? { writableConfig: true } : {}),
    ...(input.install ? { install: input.install } : {}),
    credentialFiles: await findCredentialFiles(paths.sandboxDir),
    modes: { ...(stateMode !== undefined ? { stateDir: stateMode } : {}), ...(configMode !== undefined ? { config: configMode } : {}) },
  };
}
