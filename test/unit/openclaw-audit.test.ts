import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applySafeConfigFixes,
  auditExitCode,
  checkAutoUpdate,
  checkBootstrap,
  checkCredentials,
  checkEgress,
  checkGateway,
  checkPermissions,
  checkPinnedVersion,
  checkSharedMemory,
  checkSharedStateDir,
  describeRule,
  findCredentialFiles,
  mergeFindings,
  parseOpenClawAudit,
  ruleBreadth,
  runClawjailChecks,
  type AuditFacts,
  type Finding,
} from '../../src/openclaw/audit.js';
import { prepareSandboxConfig } from '../../src/openclaw/config.js';

const TOKEN = 'f'.repeat(64);
const HARDENED = prepareSandboxConfig({}, { gatewayToken: TOKEN, keysDir: '/k' }).config;
const MANIFEST = { schema: 1 as const, pinnedAt: '2026-01-01T00:00:00.000Z', roots: [''], entries: [] };

/** A sandbox as `clawjail openclaw init` leaves it: no finding but the allowlist listing. */
function facts(over: Partial<AuditFacts> = {}): AuditFacts {
  return {
    name: 'a',
    config: HARDENED,
    sandboxDir: '/s/a',
    network: { mode: 'proxy', allow: [] },
    rwBinds: [
      { src: '/s/a/.openclaw', dest: '/sandbox/.openclaw' },
      { src: '/s/a/workspace', dest: '/sandbox/workspace' },
    ],
    env: { OPENCLAW_NO_AUTO_UPDATE: '1', DO_NOT_TRACK: '1' },
    envPass: [],
    others: [{ name: 'b', sandboxDir: '/s/b' }],
    manifest: MANIFEST,
    bootstrapChanges: [],
    install: { version: '2026.9.6', pinned: true },
    credentialFiles: [],
    modes: { stateDir: 0o700, config: 0o600 },
    ...over,
  };
}

const ids = (fs: Finding[]) => fs.map((f) => `${f.severity}:${f.id}`);

describe('a freshly initialised sandbox', () => {
  it('has no finding beyond the allowlist listing, and exits 0', () => {
    const findings = runClawjailChecks(facts());
    expect(findings).toEqual([
      { id: 'clawjail.egress_allowlist', severity: 'info', title: 'Egress allowlist', detail: 'empty: nothing is reachable except the inference router', source: 'clawjail' },
    ]);
    expect(auditExitCode(mergeFindings(findings, []))).toBe(0);
  });
});

describe('shared state and memory', () => {
  it.each([
    ['same dir as another', '/s/b', true],
    ['nested inside another', '/s/b/sub', true],
    ['containing another', '/s', true],
    ['sibling with common prefix', '/s/ab', false],
  ])('state dir %s', (_l, dir, shared) => {
    const r = checkSharedStateDir(facts({ sandboxDir: dir, rwBinds: [] }));
    expect(ids(r)).toEqual(shared ? ['critical:clawjail.state_dir_shared'] : []);
  });
  it('a read-write bind into another sandbox counts as sharing', () => {
    const r = checkSharedStateDir(facts({ rwBinds: [{ src: '/s/b/workspace/memory', dest: '/sandbox/workspace/memory' }] }));
    expect(r[0]?.detail).toMatch(/^\/s\/a \(or a read-write bind\) overlaps the state of: b \(\/s\/b\)/);
  });
  it('memory bound read-write in two sandboxes is critical', () => {
    const shared = '/srv/team-memory';
    const r = checkSharedMemory(facts({ rwBinds: [{ src: shared, dest: '/sandbox/workspace/memory' }], others: [{ name: 'b', sandboxDir: '/s/b', rwBinds: [shared] }] }));
    expect(ids(r)).toEqual(['critical:clawjail.memory_shared']);
    expect(r[0]?.detail).toBe("/srv/team-memory → /sandbox/workspace/memory is also writable by b. What one agent writes to memory is read into the other's context: a prompt injection crosses the boundary.");
  });
  it('memory bound only here is fine', () => {
    expect(checkSharedMemory(facts({ rwBinds: [{ src: '/srv/mine', dest: '/sandbox/workspace/MEMORY.md' }] }))).toEqual([]);
  });
});

describe('auto-update and plugin paths', () => {
  it('lists every self-update switch left on', () => {
    const r = checkAutoUpdate(facts({ config: { update: { auto: { enabled: true } } }, env: {} }));
    expect(ids(r)).toEqual(['warn:clawjail.auto_update']);
    expect(r[0]?.detail).toBe(
      'update.checkOnStart is not false; update.auto.enabled is true; nodeHost.autoUpdate.enabled is not false; OPENCLAW_NO_AUTO_UPDATE is not 1. Updates replace pinned code with whatever the registry serves next, and need egress the sandbox does not give.',
    );
  });
  it('plugins loaded from a writable path are critical', () => {
    const config = { ...HARDENED, plugins: { load: { paths: ['/opt/plugins', '/sandbox/workspace/plugins', '/tmp/p', 'rel/dir'] } } };
    const r = checkAutoUpdate(facts({ config }));
    expect(ids(r)).toEqual(['critical:clawjail.plugins_writable_path']);
    expect(r[0]?.detail).toMatch(/^plugins\.load\.paths includes \/sandbox\/workspace\/plugins, \/tmp\/p, rel\/dir;/);
  });
});

describe('egress', () => {
  it.each([
    [{ host: 'api.telegram.org' }, undefined],
    [{ host: 'api.telegram.org', ports: [443, 80] }, undefined],
    [{ host: 'x.example', ports: [80, 443, 8080] }, { severity: 'warn', why: '3 ports' }],
    [{ host: '*.whatsapp.net' }, { severity: 'warn', why: 'every name under whatsapp.net' }],
    [{ host: '10.0.0.5' }, undefined],
    [{ host: '10.0.0.5/32' }, undefined],
    [{ host: '10.0.0.0/24' }, { severity: 'warn', why: 'an address range of 256 addresses' }],
    [{ host: '10.0.0.0/8' }, { severity: 'critical', why: 'an address range of 16777216 addresses' }],
    [{ host: '0.0.0.0/0' }, { severity: 'critical', why: 'matches every destination' }],
    [{ host: 'fd00::/64' }, { severity: 'warn', why: 'an address range of 18446744073709552000 addresses' }],
  ])('%j → %j', (rule, expected) => {
    expect(ruleBreadth(rule)).toEqual(expected);
  });

  it('reports broad rules and lists the allowlist in full', () => {
    const r = checkEgress(facts({ network: { mode: 'proxy', allow: [{ host: 'api.telegram.org', ports: [443] }, { host: '*.whatsapp.net' }, { host: 'mirror.local', ports: [80], methods: ['GET'], paths: ['/pkgs/*'] }] } }));
    expect(r).toEqual([
      { id: 'clawjail.egress_broad', severity: 'warn', title: 'Egress rules broader than one host and port', detail: '*.whatsapp.net:443: every name under whatsapp.net', fix: 'replace wildcard and range rules with the exact hosts and ports the channel needs', source: 'clawjail' },
      { id: 'clawjail.egress_allowlist', severity: 'info', title: 'Egress allowlist', detail: 'api.telegram.org:443\n*.whatsapp.net:443\nmirror.local:80 GET /pkgs/*', source: 'clawjail' },
    ]);
  });

  it('says when there is no egress at all, or approvals are on', () => {
    expect(checkEgress(facts({ network: { mode: 'none' } }))[0]?.detail).toBe('network.mode is none: no egress at all');
    expect(checkEgress(facts({ network: { allow: [], approvals: { enabled: true } } }))[0]?.detail).toBe('empty: nothing is reachable except the inference router (unknown destinations wait for approval)');
  });

  it('describes a rule as host:ports [methods] [paths]', () => {
    expect(describeRule({ host: 'a.b', ports: [80, 8080], methods: ['GET', 'HEAD'], paths: ['/x', '/y/*'] })).toBe('a.b:80,8080 GET,HEAD /x /y/*');
  });
});

describe('pins', () => {
  it.each([
    [{ version: '2026.9.6', pinned: true }, []],
    [{ version: '2026.9.6', pinned: false }, ['warn:clawjail.openclaw_unpinned']],
    [{ version: '2026.10.1', pinned: false }, ['warn:clawjail.openclaw_unpinned']],
    [undefined, ['warn:clawjail.openclaw_unpinned']],
  ])('install %j', (install, expected) => {
    expect(ids(checkPinnedVersion(facts({ install })))).toEqual(expected);
  });
  it('bootstrap: missing manifest and changes are critical; writable is a warning', () => {
    expect(ids(checkBootstrap(facts({ manifest: undefined })))).toEqual(['critical:clawjail.bootstrap_unpinned']);
    const changed = checkBootstrap(facts({ bootstrapChanges: [{ path: 'AGENTS.md', change: 'changed' }, { path: 'BOOT.md', change: 'new' }] }));
    expect(ids(changed)).toEqual(['critical:clawjail.bootstrap_changed']);
    expect(changed[0]?.detail).toBe('changed AGENTS.md; new BOOT.md');
    expect(ids(checkBootstrap(facts({ writableBootstrap: true, manifest: undefined })))).toEqual(['warn:clawjail.bootstrap_writable']);
  });
});

describe('gateway and credentials', () => {
  it.each([
    [{ bind: 'loopback', auth: { mode: 'token', token: TOKEN } }, []],
    [{ bind: 'lan', auth: { mode: 'token', token: TOKEN } }, ['critical:clawjail.gateway_exposed']],
    [{ bind: 'loopback', auth: { mode: 'none' } }, ['critical:clawjail.gateway_exposed']],
    [{ bind: 'loopback', auth: { mode: 'token', token: 'short' } }, ['critical:clawjail.gateway_exposed']],
  ])('gateway %j', (gateway, expected) => {
    expect(ids(checkGateway(facts({ config: { ...HARDENED, gateway } })))).toEqual(expected);
  });

  it('finds keys in files, the config and the environment', () => {
    const config = { ...HARDENED, models: { providers: { ok: { apiKey: 'clawjail-router' }, ref: { apiKey: '${X}' }, bad: { apiKey: 'sk-live' } } } };
    const r = checkCredentials(facts({ config, credentialFiles: ['.openclaw/credentials', '.openclaw/agents/main/agent/auth-profiles.json'], env: { OPENAI_API_KEY: 'x', LANG: 'C' }, envPass: ['GITHUB_TOKEN'] }));
    expect(ids(r)).toEqual(['critical:clawjail.credentials_inside']);
    expect(r[0]?.detail).toBe(
      '.openclaw/credentials; .openclaw/agents/main/agent/auth-profiles.json; models.providers.bad.apiKey in openclaw.json; environment variable OPENAI_API_KEY; environment variable GITHUB_TOKEN. Anything the agent can read, a prompt injection can send out through an allowed channel.',
    );
  });

  it('channel tokens are a warning', () => {
    const r = checkCredentials(facts({ config: { ...HARDENED, channels: { telegram: { botToken: '123:abc', enabled: true }, slack: { appToken: { source: 'env', id: 'X' }, botToken: '' } } } }));
    expect(ids(r)).toEqual(['warn:clawjail.channel_tokens_inside']);
    expect(r[0]?.detail).toMatch(/^channels\.telegram\.botToken, channels\.slack\.appToken in openclaw\.json\./);
  });

  it('permissions', () => {
    expect(checkPermissions(facts({ modes: { stateDir: 0o755, config: 0o644 } }))[0]?.detail).toBe('state dir mode 755; config mode 644');
    expect(checkPermissions(facts())).toEqual([]);
  });
});

// Captured from `openclaw security audit --json` (2026.9.6) on an explored state dir.
const OPENCLAW_OUTPUT = `{
  "ts": 1795547971548,
  "summary": { "critical": 1, "warn": 2, "info": 2 },
  "findings": [
    { "checkId": "summary.attack_surface", "severity": "info", "title": "Attack surface summary", "detail": "groups: open=0, allowlist=0" },
    { "checkId": "gateway.trusted_proxies_missing", "severity": "warn", "title": "Reverse proxy headers are not trusted", "detail": "gateway.bind is loopback and gateway.trustedProxies is empty.", "remediation": "Set gateway.trustedProxies to your proxy IPs or keep the Control UI local-only." },
    { "checkId": "gateway.http.session_key_override_enabled", "severity": "info", "title": "HTTP API session-key override is enabled", "detail": "/v1/chat/completions accept x-openclaw-session-key." },
    { "checkId": "fs.state_dir.perms_readable", "severity": "warn", "title": "State dir is readable by others", "detail": "mode=755", "remediation": "chmod 700 /x" },
    { "checkId": "fs.config.perms_world_readable", "severity": "critical", "title": "Config file is world-readable", "detail": "mode=644", "remediation": "chmod 600 /x/openclaw.json" }
  ],
  "secretDiagnostics": []
}`;

describe('openclaw security audit output', () => {
  it('parses findings[] into the common shape, even after log lines', () => {
    const parsed = parseOpenClawAudit('[plugins] loaded 3\n' + OPENCLAW_OUTPUT);
    expect(parsed.map((f) => `${f.severity}:${f.id}`)).toEqual([
      'info:openclaw.summary.attack_surface',
      'warn:openclaw.gateway.trusted_proxies_missing',
      'info:openclaw.gateway.http.session_key_override_enabled',
      'warn:openclaw.fs.state_dir.perms_readable',
      'critical:openclaw.fs.config.perms_world_readable',
    ]);
    expect(parsed[4]).toEqual({ id: 'openclaw.fs.config.perms_world_readable', severity: 'critical', title: 'Config file is world-readable', detail: 'mode=644', fix: 'chmod 600 /x/openclaw.json', source: 'openclaw' });
    expect(parsed[0]).not.toHaveProperty('fix');
  });
  it('treats an unknown severity as warn and refuses output without findings', () => {
    expect(parseOpenClawAudit('{"findings":[{"checkId":"x","severity":"high","title":"t","detail":"d"}]}')[0]?.severity).toBe('warn');
    expect(() => parseOpenClawAudit('{"summary":{}}')).toThrow(/has no findings\[\]/);
    expect(() => parseOpenClawAudit('crashed')).toThrow(/no JSON object/);
  });
  it('merges critical first, clawjail before openclaw, counts, and exits 1 on any critical', () => {
    const ours = runClawjailChecks(facts({ manifest: undefined }));
    const report = mergeFindings(ours, parseOpenClawAudit(OPENCLAW_OUTPUT));
    expect(report.findings.map((f) => f.id)).toEqual([
      'clawjail.bootstrap_unpinned',
      'openclaw.fs.config.perms_world_readable',
      'openclaw.gateway.trusted_proxies_missing',
      'openclaw.fs.state_dir.perms_readable',
      'clawjail.egress_allowlist',
      'openclaw.summary.attack_surface',
      'openclaw.gateway.http.session_key_override_enabled',
    ]);
    expect(report.summary).toEqual({ critical: 2, warn: 2, info: 3 });
    expect(auditExitCode(report)).toBe(1);
    expect(auditExitCode(mergeFindings([], parseOpenClawAudit(OPENCLAW_OUTPUT).filter((f) => f.severity !== 'critical')))).toBe(0);
  });
});

describe('--fix', () => {
  it('turns self-update off and re-closes the gateway, keeping a strong token', () => {
    const config = { gateway: { bind: 'lan', auth: { mode: 'token', token: TOKEN } }, update: { checkOnStart: true } };
    const findings = runClawjailChecks(facts({ config, env: {} }));
    const { config: fixed, fixed: applied } = applySafeConfigFixes(config, findings, () => 'unused');
    expect(applied).toEqual(['clawjail.auto_update', 'clawjail.gateway_exposed']);
    expect(fixed).toEqual({
      gateway: { bind: 'loopback', auth: { mode: 'token', token: TOKEN } },
      update: { checkOnStart: false, auto: { enabled: false } },
      nodeHost: { autoUpdate: { enabled: false } },
    });
    expect(config.update.checkOnStart).toBe(true);
    expect(runClawjailChecks(facts({ config: fixed })).filter((f) => f.severity !== 'info')).toEqual([]);
  });
  it('generates a token when the old one is weak, and leaves unsafe fixes alone', () => {
    const config = { ...HARDENED, gateway: { bind: 'loopback', auth: { mode: 'none' } } };
    const findings = runClawjailChecks(facts({ config, manifest: undefined, credentialFiles: ['.openclaw/credentials'] }));
    const r = applySafeConfigFixes(config, findings, () => 'n'.repeat(64));
    expect(r.fixed).toEqual(['clawjail.gateway_exposed']);
    expect((r.config.gateway as Record<string, unknown>).auth).toEqual({ mode: 'token', token: 'n'.repeat(64) });
  });
});

describe('findCredentialFiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cj-audit-'));
    await mkdir(path.join(dir, '.openclaw', 'credentials'), { recursive: true });
    await mkdir(path.join(dir, '.openclaw', 'agents', 'main', 'agent'), { recursive: true });
    await mkdir(path.join(dir, '.openclaw', 'agents', 'ops', 'agent'), { recursive: true });
    await writeFile(path.join(dir, '.openclaw', 'agents', 'main', 'agent', 'auth-profiles.json'), '{}');
    await writeFile(path.join(dir, '.openclaw', 'agents', 'ops', 'agent', 'auth.json'), '{}');
    await writeFile(path.join(dir, '.openclaw', 'secrets.json'), '{}');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  it('lists auth stores and secrets, but not an empty credentials dir', async () => {
    expect(await findCredentialFiles(dir)).toEqual(['.openclaw/secrets.json', '.openclaw/agents/main/agent/auth-profiles.json', '.openclaw/agents/ops/agent/auth.json']);
    await writeFile(path.join(dir, '.openclaw', 'credentials', 'oauth.json'), '{}');
    expect((await findCredentialFiles(dir))[0]).toBe('.openclaw/credentials');
  });
});

describe('gatherAuditFacts on sandboxes made by init', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cj-gather-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  it('finds nothing wrong with a fresh sandbox, and a bind into its neighbour', async () => {
    const { initOpenClawSandbox } = await import('../../src/openclaw/init.js');
    const { gatherAuditFacts } = await import('../../src/openclaw/audit.js');
    const env = { HOME: dir, XDG_STATE_HOME: path.join(dir, 'state'), XDG_CONFIG_HOME: path.join(dir, 'config') };
    const a = await initOpenClawSandbox({ name: 'a', env, gatewayToken: TOKEN });
    const b = await initOpenClawSandbox({ name: 'b', env, gatewayToken: TOKEN });
    const stateHome = path.join(dir, 'state', 'clawjail');
    const profile = { network: { mode: 'proxy', allow: [] }, env: { set: { OPENCLAW_NO_AUTO_UPDATE: '1' } } };
    const f = await gatherAuditFacts({ paths: a.paths, stateHome, profile, install: { version: '2026.9.6', pinned: true } });
    expect(f.others).toEqual([{ name: 'b', sandboxDir: b.paths.sandboxDir }]);
    expect(f.modes).toEqual({ stateDir: 0o700, config: 0o600 });
    expect(f.credentialFiles).toEqual([]);
    expect(f.bootstrapChanges).toEqual([]);
    expect(runClawjailChecks(f).map((x) => x.id)).toEqual(['clawjail.egress_allowlist']);

    const shared = await gatherAuditFacts({ paths: a.paths, stateHome, profile: { ...profile, filesystem: { rw: [{ src: b.paths.workspace, dest: '/sandbox/other' }] } } });
    expect(runClawjailChecks(shared).map((x) => `${x.severity}:${x.id}`)).toEqual(['critical:clawjail.state_dir_shared', 'info:clawjail.egress_allowlist', 'warn:clawjail.openclaw_unpinned']);
  });
});
