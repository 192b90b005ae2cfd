import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyBootstrap } from '../../src/openclaw/bootstrap.js';
import { bootstrapRootsOf, initOpenClawSandbox, readSandboxRecord, stripFrontMatter } from '../../src/openclaw/init.js';
import { resolveHostHome, resolveStateHome, sandboxPaths } from '../../src/openclaw/paths.js';

const TOKEN = 'a'.repeat(64);

async function mode(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

describe('paths', () => {
  it('follows XDG with the documented fallbacks', () => {
    expect(resolveStateHome({ HOME: '/home/u' })).toBe('/home/u/.local/state/clawjail');
    expect(resolveStateHome({ HOME: '/home/u', XDG_STATE_HOME: '/x/state' })).toBe('/x/state/clawjail');
    expect(resolveStateHome({ HOME: '/home/u', XDG_STATE_HOME: 'relative' })).toBe('/home/u/.local/state/clawjail');
    expect(resolveHostHome({ HOME: '/home/u' })).toBe('/home/u/.config/clawjail/openclaw');
    expect(resolveHostHome({ HOME: '/home/u', XDG_CONFIG_HOME: '/x/cfg' })).toBe('/x/cfg/clawjail/openclaw');
  });
  it('keeps the host record outside the sandbox dir', () => {
    expect(sandboxPaths({ name: 'work', env: { HOME: '/home/u' } })).toEqual({
      name: 'work',
      sandboxDir: '/home/u/.local/state/clawjail/work',
      openclawDir: '/home/u/.local/state/clawjail/work/.openclaw',
      config: '/home/u/.local/state/clawjail/work/.openclaw/openclaw.json',
      workspace: '/home/u/.local/state/clawjail/work/workspace',
      hostDir: '/home/u/.config/clawjail/openclaw/work',
      manifest: '/home/u/.config/clawjail/openclaw/work/bootstrap-manifest.json',
      record: '/home/u/.config/clawjail/openclaw/work/sandbox.json',
      keysDir: '/home/u/.config/clawjail/openclaw/work/keys',
    });
  });
  it.each(['', '..', '../x', 'a/b', '.hidden', 'x'.repeat(64)])('refuses the name %j', (name) => {
    expect(() => sandboxPaths({ name, env: { HOME: '/h' } })).toThrow(/is not usable as a directory name/);
  });
});

describe('stripFrontMatter', () => {
  it('drops a leading --- block and one blank line after it', () => {
    expect(stripFrontMatter('---\ntitle: "x"\n---\n\n# AGENTS\n')).toBe('# AGENTS\n');
    expect(stripFrontMatter('# no front matter\n---\n')).toBe('# no front matter\n---\n');
  });
});

describe('bootstrapRootsOf', () => {
  it('adds a root per agent without its own workspace', () => {
    expect(bootstrapRootsOf({ agents: { entries: { ops: {}, coder: { workspace: '/w' }, '../x': {}, writer: { skills: [] } } } })).toEqual(['', 'ops', 'writer']);
    expect(bootstrapRootsOf({})).toEqual(['']);
  });
});

describe('initOpenClawSandbox', () => {
  let dir: string;
  let from: string;
  let env: NodeJS.ProcessEnv;
  let entry: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cj-init-'));
    env = { HOME: path.join(dir, 'home'), XDG_STATE_HOME: path.join(dir, 'state'), XDG_CONFIG_HOME: path.join(dir, 'config') };
    from = path.join(dir, 'home', '.openclaw');
    await mkdir(path.join(from, 'workspace', 'memory'), { recursive: true });
    await mkdir(path.join(from, 'credentials'), { recursive: true });
    await mkdir(path.join(from, 'agents', 'main', 'agent'), { recursive: true });
    await writeFile(path.join(from, 'credentials', 'telegram-allowFrom.json'), '["123"]');
    await writeFile(path.join(from, 'agents', 'main', 'agent', 'auth-profiles.json'), '{"k":"sk-AUTHSTORE"}');
    await writeFile(path.join(from, 'workspace', 'AGENTS.md'), 'my agents file\n');
    await writeFile(path.join(from, 'workspace', 'memory', 'note.md'), 'note\n');
    await symlink('/etc/hostname', path.join(from, 'workspace', 'link-to-host'));
    await writeFile(
      path.join(from, 'openclaw.json'),
      JSON.stringify({
        gateway: { mode: 'local', bind: 'lan', auth: { mode: 'token', token: 'users-own-token' } },
        agents: { defaults: { model: { primary: 'corp/m1' } } },
        models: {
          providers: {
            corp: { baseUrl: 'https://llm.corp.example/v1', api: 'openai-completions', apiKey: 'sk-LITERAL-123', models: [{ id: 'm1', name: 'M1' }] },
            claude: { baseUrl: 'https://api.anthropic.com', api: 'anthropic-messages', apiKey: '${ANTHROPIC_API_KEY}' },
          },
        },
      }),
    );
    // A stand-in OpenClaw package: only its templates are read.
    const pkg = path.join(dir, 'oc', 'node_modules', 'openclaw');
    await mkdir(path.join(pkg, 'docs', 'reference', 'templates'), { recursive: true });
    entry = path.join(pkg, 'openclaw.mjs');
    await writeFile(entry, '');
    for (const n of ['AGENTS.md', 'SOUL.md', 'USER.md', 'IDENTITY.md', 'BOOTSTRAP.md', 'TOOLS.md']) {
      await writeFile(path.join(pkg, 'docs', 'reference', 'templates', n), `---\nsummary: "${n}"\n---\n\ntemplate ${n}\n`);
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds the sandbox dir, moves keys out, pins, and records routes', async () => {
    const r = await initOpenClawSandbox({ name: 'work', from, env, openclawEntry: entry, gatewayToken: TOKEN, now: new Date('2026-02-03T04:05:06Z') });
    const p = sandboxPaths({ name: 'work', env });
    expect(r.paths).toEqual(p);
    expect(r.gatewayToken).toBe(TOKEN);
    expect(r.routes).toEqual([
      { name: 'corp', api: 'openai', upstream: 'https://llm.corp.example/v1', credential: { file: path.join(p.keysDir, 'corp.key') }, models: ['m1'] },
      { name: 'claude', api: 'anthropic', upstream: 'https://api.anthropic.com/v1', credential: { env: 'ANTHROPIC_API_KEY' } },
    ]);
    expect(r.seeded).toEqual(['BOOTSTRAP.md', 'IDENTITY.md', 'SOUL.md', 'USER.md']);
    expect(r.copied).toEqual([path.join(from, 'openclaw.json'), path.join(from, 'workspace')]);
    expect(r.warnings).toEqual([]);

    const config = JSON.parse(await readFile(p.config, 'utf8'));
    expect(config.gateway).toEqual({ mode: 'local', bind: 'loopback', port: 18789, auth: { mode: 'token', token: TOKEN } });
    expect(config.models.providers.corp).toEqual({ baseUrl: 'http://127.0.0.1:3129/corp/v1', api: 'openai-completions', apiKey: 'clawjail-router', models: [{ id: 'm1', name: 'M1' }] });
    expect(config.models.providers.claude).toEqual({ baseUrl: 'http://127.0.0.1:3129/claude/v1', api: 'anthropic-messages', apiKey: 'clawjail-router' });
    expect(config.logging).toEqual({ file: '/sandbox/.openclaw/logs/openclaw.log' });
    expect(config.agents.defaults).toEqual({ model: { primary: 'corp/m1' }, workspace: '/sandbox/workspace' });

    expect(await readFile(path.join(p.keysDir, 'corp.key'), 'utf8')).toBe('sk-LITERAL-123\n');
    expect(await mode(path.join(p.keysDir, 'corp.key'))).toBe(0o600);
    expect(await mode(p.keysDir)).toBe(0o700);
    expect(await mode(p.sandboxDir)).toBe(0o700);
    expect(await mode(p.openclawDir)).toBe(0o700);
    expect(await mode(p.config)).toBe(0o600);
    expect(path.relative(p.sandboxDir, p.keysDir).startsWith('..')).toBe(true);

    // The key, the user's gateway token and the auth store appear nowhere in the sandbox dir.
    const grep = (s: string) => {
      try {
        return execFileSync('grep', ['-rl', s, p.sandboxDir], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    };
    expect(grep('sk-LITERAL-123')).toBe('');
    expect(grep('users-own-token')).toBe('');
    expect(grep('sk-AUTHSTORE')).toBe('');

    expect((await readdir(p.openclawDir)).sort()).toEqual(['logs', 'openclaw.json']);
    expect((await readdir(p.workspace)).sort()).toEqual(['AGENTS.md', 'BOOTSTRAP.md', 'IDENTITY.md', 'SOUL.md', 'USER.md', 'link-to-host', 'memory', 'skills']);
    expect(await readFile(path.join(p.workspace, 'AGENTS.md'), 'utf8')).toBe('my agents file\n');
    expect(await readFile(path.join(p.workspace, 'SOUL.md'), 'utf8')).toBe('template SOUL.md\n');
    expect(await readFile(path.join(p.workspace, 'memory', 'note.md'), 'utf8')).toBe('note\n');
    expect((await import('node:fs')).readlinkSync(path.join(p.workspace, 'link-to-host'))).toBe('/etc/hostname');

    const v = await verifyBootstrap(p.workspace, p.manifest);
    expect(v).toMatchObject({ pinned: true, ok: true, changes: [] });
    expect(v.pinned && v.manifest.entries.map((e) => e.path)).toEqual(['AGENTS.md', 'BOOTSTRAP.md', 'IDENTITY.md', 'SOUL.md', 'USER.md', 'skills']);

    expect(await readSandboxRecord(p.record)).toEqual({
      schema: 1,
      name: 'work',
      sandboxDir: p.sandboxDir,
      createdAt: '2026-02-03T04:05:06.000Z',
      from,
      withCredentials: false,
      routes: r.routes,
      bootstrapRoots: [''],
    });
    expect(await mode(p.record)).toBe(0o600);
    // The source is untouched.
    expect(JSON.parse(await readFile(path.join(from, 'openclaw.json'), 'utf8')).models.providers.corp.apiKey).toBe('sk-LITERAL-123');
  });

  it('copies credentials/ only when asked', async () => {
    const r = await initOpenClawSandbox({ name: 'c', from, env, withCredentials: true, gatewayToken: TOKEN });
    expect(await readFile(path.join(r.paths.openclawDir, 'credentials', 'telegram-allowFrom.json'), 'utf8')).toBe('["123"]');
    expect(await mode(path.join(r.paths.openclawDir, 'credentials'))).toBe(0o700);
    expect(r.copied).toContain(path.join(from, 'credentials'));
    expect(await readSandboxRecord(r.paths.record)).toMatchObject({ withCredentials: true });
  });

  it('makes a fresh sandbox without --from, generating a 64-hex-digit token', async () => {
    const r = await initOpenClawSandbox({ env });
    expect(r.paths.name).toBe('default');
    expect(r.gatewayToken).toMatch(/^[0-9a-f]{64}$/);
    expect(r.routes).toEqual([]);
    expect(r.seeded).toEqual([]);
    const config = JSON.parse(await readFile(r.paths.config, 'utf8'));
    expect(config.gateway.auth).toEqual({ mode: 'token', token: r.gatewayToken });
    expect((await readdir(r.paths.workspace)).sort()).toEqual(['memory', 'skills']);
  });

  it('refuses to overwrite an existing sandbox unless forced', async () => {
    await initOpenClawSandbox({ name: 'x', env, gatewayToken: TOKEN });
    await writeFile(path.join(sandboxPaths({ name: 'x', env }).workspace, 'scratch.txt'), 'x');
    await expect(initOpenClawSandbox({ name: 'x', env })).rejects.toThrow(/sandbox "x" already exists/);
    const r = await initOpenClawSandbox({ name: 'x', env, force: true, gatewayToken: 'b'.repeat(64) });
    expect(await readdir(r.paths.workspace)).not.toContain('scratch.txt');
    expect(JSON.parse(await readFile(r.paths.config, 'utf8')).gateway.auth.token).toBe('b'.repeat(64));
  });

  it('reads a JSON5 config through the given parser, and refuses one without', async () => {
    await writeFile(path.join(from, 'openclaw.json'), '{ // comment\n gateway: { mode: "local" },\n}\n');
    await expect(initOpenClawSandbox({ name: 'j', from, env })).rejects.toThrow(/is not strict JSON/);
    const json5 = () => ({ gateway: { mode: 'local' }, telemetry: { enabled: true } });
    const r = await initOpenClawSandbox({ name: 'j', from, env, parseJson5: json5, gatewayToken: TOKEN });
    expect(JSON.parse(await readFile(r.paths.config, 'utf8')).telemetry).toEqual({ enabled: false });
  });

  it('warns and continues when --from has no config or workspace', async () => {
    const empty = path.join(dir, 'empty');
    await mkdir(empty);
    const r = await initOpenClawSandbox({ name: 'e', from: empty, env, gatewayToken: TOKEN });
    expect(r.warnings).toEqual([`${path.join(empty, 'openclaw.json')} does not exist; starting from an empty config`, `workspace ${path.join(empty, 'workspace')} does not exist; the sandbox starts with an empty one`]);
  });

  it('refuses a --from that is not a directory', async () => {
    await expect(initOpenClawSandbox({ name: 'n', from: path.join(dir, 'nope'), env })).rejects.toThrow(/is not a directory/);
  });
});

describe.skipIf(process.getuid?.() !== 0)('initOpenClawSandbox as root (skipped unless root: chown needs it)', () => {
  it('hands the whole sandbox dir, links included, to the sandbox uid, but not the host record', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cj-init-own-'));
    try {
      const env = { HOME: dir, XDG_STATE_HOME: path.join(dir, 'state'), XDG_CONFIG_HOME: path.join(dir, 'config') };
      const from = path.join(dir, 'from');
      await mkdir(path.join(from, 'workspace'), { recursive: true });
      await symlink('/etc/hostname', path.join(from, 'workspace', 'l'));
      const r = await initOpenClawSandbox({ name: 'o', from, env, owner: { uid: 61000, gid: 61001 }, gatewayToken: TOKEN });
      const owners = execFileSync('find', [r.paths.sandboxDir, '-printf', '%u:%g %P\n'], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(' ')[0]);
      expect(new Set(owners)).toEqual(new Set(['61000:61001']));
      expect((await stat('/etc/hostname')).uid).toBe(0);
      expect((await stat(r.paths.record)).uid).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
