import { describe, expect, it } from 'vitest';
import type { HostFacts } from '../../src/host/probe.js';
import { buildEnv } from '../../src/plan/env.js';
import type { PathFacts } from '../../src/host/path-facts.js';
import { buildRlimits } from '../../src/plan/limits.js';
import { buildMounts, DEV, parseSize, PROC_MASKED, PROC_READ_ONLY } from '../../src/plan/mounts.js';
import { FORWARDED_SIGNALS } from '../../src/policy/signals.js';
import { buildIdentity, buildPlan } from '../../src/plan/plan.js';
import { parseProfile } from '../../src/profile/load.js';
import { loadProfile } from '../../src/profile/load.js';
import { hostFacts } from '../helpers/host-facts.js';

const host = hostFacts;

const facts: PathFacts = {
  '/usr': { kind: 'dir', real: '/usr', realKind: 'dir' },
  '/bin': { kind: 'symlink', link: 'usr/bin', real: '/usr/bin', realKind: 'dir' },
  '/lib': { kind: 'symlink', link: 'usr/lib', real: '/usr/lib', realKind: 'dir' },
  '/lib32': { kind: 'missing' },
  '/etc': { kind: 'dir', real: '/etc', realKind: 'dir' },
  '/etc/resolv.conf': { kind: 'symlink', link: '../run/systemd/resolve/stub-resolv.conf', real: '/run/systemd/resolve/stub-resolv.conf', realKind: 'file' },
  '/etc/hosts': { kind: 'file', real: '/etc/hosts', realKind: 'file' },
  '/srv/data': { kind: 'dir', real: '/srv/data', realKind: 'dir' },
  '/srv/data/sub': { kind: 'dir', real: '/srv/data/sub', realKind: 'dir' },
  '/srv/link': { kind: 'symlink', link: '/srv/data', real: '/srv/data', realKind: 'dir' },
  '/srv/file': { kind: 'file', real: '/srv/file', realKind: 'file' },
};

const profileWith = (raw: Record<string, unknown>) => loadProfile({ overrides: [raw] }).profile;

describe('buildMounts', () => {
  it('orders system, generated files, kernel filesystems, /sandbox, then binds parents first', () => {
    const profile = profileWith({
      filesystem: { system: ['/usr', '/bin', '/lib', '/lib32', '/etc'], ro: [{ src: '/srv/file', dest: '/sandbox/work/AGENTS.md' }, { src: '/srv/data/sub', dest: '/data/sub' }], rw: [{ src: '/srv/data', dest: '/data' }] },
    });
    const r = buildMounts({ profile, sandboxHostDir: '/tmp/sbx', facts, expand: (p) => p, tmpSizeBytes: 1 << 20, sandboxUser: { uid: 1000, gid: 1000 } });
    expect(r.mounts.map((m) => `${m.op} ${m.dest}`)).toEqual([
      'bind /usr',
      'symlink /bin',
      'symlink /lib',
      'bind /etc',
      'file /etc/hosts',
      'file /run/systemd/resolve/stub-resolv.conf',
      'file /etc/passwd',
      'file /etc/group',
      'proc /proc',
      ...PROC_MASKED.map((p) => `mask ${p}`),
      ...PROC_READ_ONLY.map((p) => `readonly ${p}`),
      'dev /dev',
      'tmpfs /tmp',
      'dir /run/clawjail',
      'bind /sandbox',
      'bind /data',
      'bind /data/sub',
      'bind /sandbox/work/AGENTS.md',
    ]);
    expect(r.mounts.find((m) => m.dest === '/bin')).toEqual({ op: 'symlink', dest: '/bin', target: 'usr/bin' });
    // The host's boot command line and the kernel's tunables are the ones the native side hides.
    expect(PROC_MASKED).toContain('/proc/cmdline');
    expect(PROC_READ_ONLY).toContain('/proc/sys');
    expect(r.readOnlyPaths).toEqual(['/usr', '/etc', '/data/sub', '/sandbox/work/AGENTS.md']);
    expect(r.readWritePaths).toEqual(['/sandbox', '/tmp', '/dev/shm', '/data']);
  });

  it('binds what a symlinked source resolves to and says so', () => {
    const profile = profileWith({ filesystem: { system: [], ro: [{ src: '/srv/link', dest: '/d' }] } });
    const r = buildMounts({ profile, sandboxHostDir: '/s', facts, expand: (p) => p, tmpSizeBytes: 1, sandboxUser: { uid: 1, gid: 1 } });
    expect(r.mounts.at(-1)).toEqual({ op: 'bind', src: '/srv/data', dest: '/d', readonly: true });
    expect(r.warnings).toEqual(['--ro /srv/link: resolves to /srv/data (a symlink is on the way); binding /srv/data']);
  });

  it.each([
    [{ rw: [{ src: '/srv/data', dest: '/' }] }, 'binding over / is refused'],
    [{ ro: [{ src: '/srv/data', dest: '/proc' }] }, 'binding over /proc is refused'],
    [{ ro: [{ src: '/srv/data', dest: '/dev/x' }] }, 'binding over /dev is refused'],
    [{ ro: [{ src: '/srv/data', dest: '/run/clawjail/x' }] }, 'binding over /run/clawjail is refused'],
    [{ ro: [{ src: '/nope' }] }, '--ro /nope: the source does not exist on the host'],
  ])('refuses %j', (fsOver, message) => {
    const profile = profileWith({ filesystem: { system: [], ...fsOver } });
    expect(() => buildMounts({ profile, sandboxHostDir: '/s', facts, expand: (p) => p, tmpSizeBytes: 1, sandboxUser: { uid: 1, gid: 1 } })).toThrow(message);
  });

  it('skips an optional missing bind with a warning', () => {
    const profile = profileWith({ filesystem: { system: [], ro: [{ src: '/nope', optional: true }] } });
    const r = buildMounts({ profile, sandboxHostDir: '/s', facts, expand: (p) => p, tmpSizeBytes: 1, sandboxUser: { uid: 1, gid: 1 } });
    expect(r.binds).toEqual([]);
    expect(r.warnings).toEqual(['--ro /nope: source does not exist; skipped (optional)']);
  });
});

describe('buildIdentity', () => {
  it('keeps an unprivileged caller\'s uid, and maps a root caller to the dedicated uid', () => {
    const profile = profileWith({ identity: { uid: 70000, gid: 70001 } });
    expect(buildIdentity(profile, host())).toEqual({ uid: 1000, gid: 1000, hostUid: 1000, hostGid: 1000, dropSupplementaryGroups: false });
    expect(buildIdentity(profile, host({ uid: 0, gid: 0, isRoot: true }))).toEqual({ uid: 70000, gid: 70001, hostUid: 70000, hostGid: 70001, dropSupplementaryGroups: true });
  });
});

describe('buildEnv', () => {
  const base = { pathDirs: ['/usr/bin', '/bin'], pass: [], set: {}, sandboxName: 'sb' };
  it('starts empty and lets through only terminal/locale variables', () => {
    const env = buildEnv({ ...base, hostEnv: { LANG: 'C.UTF-8', LC_ALL: 'C', TERM: 'xterm', AWS_SECRET_ACCESS_KEY: 'x', HOME: '/root', PATH: '/root/bin' } });
    expect(env).toEqual(['LANG=C.UTF-8', 'LC_ALL=C', 'TERM=xterm', 'PATH=/usr/bin:/bin', 'HOME=/sandbox', 'TMPDIR=/tmp', 'USER=sandbox', 'LOGNAME=sandbox', 'CLAWJAIL_SANDBOX=sb']);
  });
  it('adds the proxy and inference variables, then --env pass and set (set wins)', () => {
    const env = buildEnv({ ...base, hostEnv: { TOKEN: 't' }, pass: ['TOKEN', 'ABSENT'], set: { HOME: '/sandbox/h' }, proxyPort: 3128, serviceEnv: { CLAWJAIL_INFERENCE_URL: 'http://127.0.0.1:3129/v1' } });
    expect(env).toContain('HTTPS_PROXY=http://127.0.0.1:3128');
    expect(env).toContain('https_proxy=http://127.0.0.1:3128');
    expect(env).toContain('NODE_USE_ENV_PROXY=1');
    expect(env).toContain('NO_PROXY=localhost,127.0.0.1,::1');
    expect(env).toContain('CLAWJAIL_INFERENCE_URL=http://127.0.0.1:3129/v1');
    expect(env).toContain('TOKEN=t');
    expect(env).toContain('HOME=/sandbox/h');
    expect(env.some((e) => e.startsWith('ABSENT'))).toBe(false);
  });
});

describe('buildRlimits', () => {
  it('clamps to the host hard limit and reports it', () => {
    const r = buildRlimits({ nofile: 65536, core: 0, nproc: { soft: 100, hard: 'unlimited' } }, host().rlimits);
    expect(r.rlimits).toEqual([
      { resource: 'nofile', soft: 4096, hard: 4096 },
      { resource: 'core', soft: 0, hard: 0 },
      { resource: 'nproc', soft: 100, hard: 'infinity' },
    ]);
    expect(r.notes).toEqual(['nofile: requested 65536, host hard limit is 4096; applied 4096']);
  });
});

describe('parseSize', () => {
  it.each([['256m', 268435456], ['1g', 1073741824], ['1.5k', 1536], ['4096', 4096], [10, 10]])('%s', (v, n) => expect(parseSize(v)).toBe(n));
});

describe('buildPlan', () => {
  const input = (over: Record<string, unknown> = {}, h: HostFacts = host()) => ({
    profile: profileWith(over),
    host: h,
    pathFacts: facts,
    command: ['sh', '-c', 'true'],
    name: 'sb',
    supervisorPid: 42,
    sandboxDir: { host: '/tmp/sbx', ephemeral: true },
    hostEnv: {},
    expand: (p: string) => p,
    compileSeccomp: () => ({ program: Buffer.alloc(8), instructions: 1 }),
  });

  it('refuses when user namespaces are unavailable, naming why', () => {
    const h = host({ userns: { available: false, errno: 1, reason: 'EPERM: AppArmor restricts unprivileged user namespaces' } });
    expect(() => buildPlan(input({}, h))).toThrow(/user namespaces are unavailable \(EPERM: AppArmor/);
  });

  it('refuses required landlock on a kernel without it, and degrades best-effort with a report', () => {
    const h = host({ landlock: { abi: 0, errno: 38, reason: 'ENOSYS: this kernel is built without landlock' } });
    expect(() => buildPlan(input({ landlock: { mode: 'required' } }, h))).toThrow('landlock is required but unavailable: ENOSYS');
    const p = buildPlan(input({ landlock: { mode: 'best-effort' } }, h));
    expect(p.report.layers.find((l) => l.layer === 'landlock')).toMatchObject({ status: 'unavailable', mode: 'best-effort' });
    expect(p.native.workload.landlock).toBeNull();
    expect(p.warnings.some((w) => w.startsWith('landlock unavailable'))).toBe(true);
  });

  it('refuses required landlock when maxAbi caps it below what the rules need', () => {
    expect(() => buildPlan(input({ landlock: { mode: 'required', maxAbi: 3 } }))).toThrow(/only partly enforceable at ABI 3: missing .*net\.connect_tcp \(ABI 4\)/);
  });

  it('refuses required cgroup limits where cgroup v2 is unavailable', () => {
    expect(() => buildPlan(input({ limits: { cgroup: { mode: 'required', pidsMax: 10 } } }))).toThrow('cgroup limits are required but unavailable: cgroup v2 is not mounted');
  });

  it('lists the services and their ports when network and inference are on', () => {
    const p = buildPlan(input({ inference: { routes: [{ name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' } }] } }));
    expect(p.native.services).toEqual([
      { name: 'egress', kind: 'tcp', port: 3128 },
      { name: 'inference', kind: 'tcp', port: 3129 },
      { name: 'inference.sock', kind: 'unix', path: '/run/clawjail/inference.sock' },
    ]);
    expect(p.native.workload.landlock!.netRules).toEqual([
      { port: 3128, access: 2 },
      { port: 3129, access: 2 },
    ]);
  });

  it('refuses to pass an inference credential into the sandbox', () => {
    const routes = [{ name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' } }];
    expect(() => buildPlan(input({ inference: { routes }, env: { pass: ['OPENAI_API_KEY'] } }))).toThrow("refusing to put OPENAI_API_KEY into the sandbox's environment");
  });

  it('carries the egress policy the services enforce: rules, approvals, limits, audit log, where --always writes', () => {
    const network = {
      allow: [{ host: 'api.github.com' }, { host: '127.0.0.1', ports: [5432] }],
      deny: [{ host: 'evil.example.com' }],
      approvals: { enabled: true, timeoutMs: 5000 },
      limits: { maxConnections: 8 },
      auditLog: '/var/log/profile-audit.jsonl',
    };
    const p = buildPlan({ ...input({ network }), auditLog: '/var/log/flag-audit.jsonl', profileFile: '/etc/clawjail/agent.yaml' });
    expect(p.egress).toEqual({
      mode: 'proxy',
      allow: [
        { host: 'api.github.com', ports: [443], allowMissingSni: false },
        { host: '127.0.0.1', ports: [5432], allowMissingSni: false },
      ],
      deny: [{ host: 'evil.example.com' }],
      approvals: { enabled: true, timeoutMs: 5000 },
      limits: { maxConnections: 8, headersTimeoutMs: 10_000, idleTimeoutMs: 600_000 },
      auditLog: '/var/log/flag-audit.jsonl',
      persistTo: '/etc/clawjail/agent.yaml',
    });
    expect(p.services.loopback).toEqual([5432]);
    // The profile's own audit log when no launch option names one; no persistTo without approvals.
    const q = buildPlan({ ...input({ network: { ...network, approvals: { enabled: false } } }), profileFile: '/etc/clawjail/agent.yaml' });
    expect(q.egress.auditLog).toBe('/var/log/profile-audit.jsonl');
    expect(q.egress).not.toHaveProperty('persistTo');
    // No egress: the section says so, and no egress service runs.
    const none = buildPlan(input({ network: { mode: 'none' } }));
    expect(none.egress.mode).toBe('none');
    expect(none.services.egress).toBeUndefined();
  });

  it('carries the inference routes with each credential\'s source, never its value', () => {
    const secret = 'sk-live-plan-must-never-hold-this';
    const routes = [
      { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' }, models: ['gpt-5'], rewriteModel: 'gpt-5-mini' },
      { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { file: '/run/secrets/anthropic' }, optional: true, timeoutMs: 1000 },
      { name: 'local', api: 'openai', upstream: 'http://127.0.0.1:11434/v1' },
    ];
    const p = buildPlan({ ...input({ inference: { routes, auditBodies: true } }), hostEnv: { OPENAI_API_KEY: secret, PATH: '/usr/bin' } });
    expect(p.inference).toEqual({
      default: 'openai',
      auditBodies: true,
      routes: [
        { name: 'openai', api: 'openai', upstream: 'https://api.openai.com/v1', credential: { env: 'OPENAI_API_KEY' }, models: ['gpt-5'], rewriteModel: 'gpt-5-mini', timeoutMs: 600_000, optional: false },
        { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { file: '/run/secrets/anthropic' }, timeoutMs: 1000, optional: true },
        { name: 'local', api: 'openai', upstream: 'http://127.0.0.1:11434/v1', timeoutMs: 600_000, optional: false },
      ],
    });
    // What --dry-run prints is this object as JSON.
    const printed = JSON.stringify(p);
    expect(printed).not.toContain(secret);
    expect(printed).toContain('"credential":{"env":"OPENAI_API_KEY"}');
    expect(buildPlan(input()).inference).toEqual({ routes: [], auditBodies: false });
  });

  it('carries every decision the helper carries out: the whole /dev, the forwarded signals, TSYNC, the PATH', () => {
    const p = buildPlan(input());
    expect(p.native.mounts.filter((m) => m.op === 'dev')).toEqual([
      {
        op: 'dev',
        dest: '/dev',
        size: 1024 ** 2,
        devices: ['null', 'zero', 'full', 'random', 'urandom', 'tty'],
        pts: true,
        shm: { size: 64 * 1024 ** 2 },
        links: [
          { name: 'ptmx', target: 'pts/ptmx' },
          { name: 'fd', target: '/proc/self/fd' },
          { name: 'stdin', target: '/proc/self/fd/0' },
          { name: 'stdout', target: '/proc/self/fd/1' },
          { name: 'stderr', target: '/proc/self/fd/2' },
        ],
      },
    ]);
    // landlock grants exactly the devices and the pty directory the dev op creates
    const landlockPaths = p.native.workload.landlock!.rules.map((r) => r.path);
    for (const d of [...DEV.devices.map((d) => `/dev/${d}`), '/dev/pts', '/dev/shm']) expect(landlockPaths).toContain(d);
    // the CLI forwards the same list (src/cli/run.ts imports it)
    expect(p.native.forwardSignals).toEqual(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']);
    expect(p.native.forwardSignals).toEqual([...FORWARDED_SIGNALS]);
    expect(p.native.workload.seccomp).toEqual({ program: Buffer.alloc(8).toString('base64'), tsync: true });
    // the helper has no PATH of its own: the plan's is the only one
    expect(p.native.workload.env.filter((e) => e.startsWith('PATH='))).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/bin']);
    expect(p.native.workload).not.toHaveProperty('keepFds');
  });

  it('is deterministic: the same input gives the same plan (snapshot)', () => {
    const a = buildPlan(input());
    const b = buildPlan(input());
    expect(a).toEqual(b);
    expect(a.native).toMatchSnapshot();
  });
});

describe('parseProfile', () => {
  it('fills defaults for an empty profile', () => {
    const p = parseProfile({});
    expect(p.network.mode).toBe('proxy');
    expect(p.landlock.mode).toBe('best-effort');
    expect(p.identity.uid).toBe(61000);
    expect(p.process.cwd).toBe('/sandbox');
  });
});
